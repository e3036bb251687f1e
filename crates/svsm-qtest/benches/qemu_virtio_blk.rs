//! Benchmark placeholder; the measurement lands with the benchmark commit.
fn main() {}
