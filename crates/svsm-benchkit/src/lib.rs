//! Benchmarks that report ratios against a baseline measured in the same run.
//!
//! The machines we run on are shared and noisy, so absolute times drift by more than the effects we care
//! about. Every comparison here therefore interleaves baseline and candidate in alternating rounds (so drift
//! hits both equally), reports medians and tails per operation, and states the result as a ratio
//! `candidate / baseline`. Progress goes to stderr; the Markdown table for `BENCHMARKS.md` goes to stdout and,
//! if `BENCH_OUT` names a file, is appended there too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Summary statistics of one measured operation.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median time per operation.
    pub median: Duration,
    /// 10th percentile.
    pub p10: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile (with fewer than 100 samples: the nearest order statistic, close to the maximum).
    pub p99: Duration,
    /// Number of samples.
    pub samples: usize,
}

impl Stats {
    fn from_samples(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Stats { median: at(0.5), p10: at(0.1), p90: at(0.9), p99: at(0.99), samples: samples.len() }
    }
}

/// One row of a comparison table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub name: String,
    /// Label of the baseline.
    pub baseline_label: String,
    /// Baseline statistics.
    pub baseline: Stats,
    /// Label of the candidate.
    pub candidate_label: String,
    /// Candidate statistics.
    pub candidate: Stats,
    /// Target ratio (candidate / baseline must be <= this), if the issue sets one.
    pub target: Option<Target>,
}

/// A target the ratio must meet.
///
/// Samples are always times per operation, so every target is an upper bound on the time ratio; a
/// throughput target "at least p of the baseline" is `AtMost(1.0 / p)`.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// candidate / baseline <= x.
    AtMost(f64),
}

impl Row {
    /// Median candidate time divided by median baseline time.
    pub fn ratio(&self) -> f64 {
        self.candidate.median.as_secs_f64() / self.baseline.median.as_secs_f64()
    }

    /// Whether the target is met (true if there is none).
    pub fn meets_target(&self) -> bool {
        match self.target {
            None => true,
            Some(Target::AtMost(x)) => self.ratio() <= x,
        }
    }
}

/// How a comparison is run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Alternating rounds (each round runs baseline then candidate, or the reverse on odd rounds).
    pub rounds: usize,
    /// Operations per side per round.
    pub per_round: usize,
    /// Untimed operations per side before the first round.
    pub warmup: usize,
}

impl Plan {
    /// A plan of `rounds` x `per_round` timed operations per side with a tenth as warm-up.
    pub fn new(rounds: usize, per_round: usize) -> Self {
        Plan { rounds, per_round, warmup: (rounds * per_round / 10).max(1) }
    }

    /// Scales the plan down when `BENCH_QUICK` is set (used by CI smoke runs, never for recorded numbers).
    pub fn quick_if_requested(mut self) -> Self {
        if std::env::var_os("BENCH_QUICK").is_some() {
            self.rounds = self.rounds.clamp(1, 4);
            self.per_round = self.per_round.clamp(1, 10);
            self.warmup = 1;
        }
        self
    }
}

/// Measures `baseline` and `candidate` per operation, interleaved, and returns the row.
///
/// Each closure performs exactly one operation per call.
pub fn compare(
    name: &str,
    plan: Plan,
    baseline_label: &str,
    mut baseline: impl FnMut(),
    candidate_label: &str,
    mut candidate: impl FnMut(),
) -> Row {
    let [base, cand] = interleave(name, plan, [&mut baseline, &mut candidate]);
    row(name, baseline_label, base, candidate_label, cand)
}

/// Measures several operations in the same interleaved rounds and returns their statistics in order, for
/// rows that share a side (a transport floor, a baseline and a candidate): every pairwise ratio then comes
/// from the same run. Round `r` runs the operations in order when `r` is even and in reverse when it is odd,
/// so drift hits all of them alike.
///
/// Each closure performs exactly one operation per call.
pub fn interleave<const N: usize>(name: &str, plan: Plan, mut ops: [&mut dyn FnMut(); N]) -> [Stats; N] {
    let plan = plan.quick_if_requested();
    for _ in 0..plan.warmup {
        for op in ops.iter_mut() {
            op();
        }
    }
    let mut samples: [Vec<Duration>; N] =
        std::array::from_fn(|_| Vec::with_capacity(plan.rounds * plan.per_round));
    for round in 0..plan.rounds {
        for k in 0..N {
            let i = if round % 2 == 0 { k } else { N - 1 - k };
            for _ in 0..plan.per_round {
                let t = Instant::now();
                ops[i]();
                samples[i].push(t.elapsed());
            }
        }
        progress(name, round + 1, plan.rounds);
    }
    eprintln!();
    samples.map(Stats::from_samples)
}

/// Builds a row from statistics measured by [`interleave`].
pub fn row(
    name: &str,
    baseline_label: &str,
    baseline: Stats,
    candidate_label: &str,
    candidate: Stats,
) -> Row {
    Row {
        name: name.to_owned(),
        baseline_label: baseline_label.to_owned(),
        baseline,
        candidate_label: candidate_label.to_owned(),
        candidate,
        target: None,
    }
}

/// Measures a single operation (no baseline), e.g. a one-off open.
pub fn measure(name: &str, plan: Plan, mut op: impl FnMut()) -> Stats {
    let plan = plan.quick_if_requested();
    for _ in 0..plan.warmup {
        op();
    }
    let mut samples = Vec::with_capacity(plan.rounds * plan.per_round);
    for round in 0..plan.rounds {
        for _ in 0..plan.per_round {
            let t = Instant::now();
            op();
            samples.push(t.elapsed());
        }
        progress(name, round + 1, plan.rounds);
    }
    eprintln!();
    Stats::from_samples(samples)
}

fn progress(name: &str, done: usize, total: usize) {
    let width = 30;
    let filled = done * width / total.max(1);
    eprint!("\r{name:<48} [{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled));
    let _ = std::io::stderr().flush();
}

/// Formats a duration with a unit that keeps three significant digits readable.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// A table of rows that prints as Markdown.
#[derive(Debug, Default)]
pub struct Report {
    title: String,
    rows: Vec<Row>,
    notes: Vec<String>,
    p99: bool,
}

impl Report {
    /// An empty report with a section title.
    pub fn new(title: &str) -> Self {
        Report { title: title.to_owned(), ..Default::default() }
    }

    /// Also shows each side's p99 (for latency targets stated as p50/p99); other reports keep the p10–p90
    /// columns they always had.
    pub fn with_p99(mut self) -> Self {
        self.p99 = true;
        self
    }

    /// Adds a row.
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Adds a free-text line under the table (e.g. a throughput or heap figure).
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// Renders the report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "### {}\n", self.title);
        let tail = if self.p99 { "p50 (p10–p90; p99)" } else { "median (p10–p90)" };
        let _ = writeln!(
            s,
            "| measurement | baseline | baseline {tail} | candidate | candidate {tail} | ratio | target |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        let cell = |st: &Stats| {
            let mut c =
                format!("{} ({}–{}", fmt_duration(st.median), fmt_duration(st.p10), fmt_duration(st.p90));
            if self.p99 {
                let _ = write!(c, "; p99 {}", fmt_duration(st.p99));
            }
            c.push(')');
            c
        };
        for r in &self.rows {
            let target = match r.target {
                None => "–".to_owned(),
                Some(Target::AtMost(x)) => format!("≤ {x:.2} {}", if r.meets_target() { "✅" } else { "❌" }),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | **{:.3}** | {} |",
                r.name,
                r.baseline_label,
                cell(&r.baseline),
                r.candidate_label,
                cell(&r.candidate),
                r.ratio(),
                target
            );
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// Prints to stdout and appends to `$BENCH_OUT` if set.
    pub fn emit(&self) {
        let md = self.markdown();
        println!("{md}");
        if let Some(path) = std::env::var_os("BENCH_OUT") {
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(md.as_bytes()).and_then(|_| f.write_all(b"\n")));
            if let Err(e) = appended {
                eprintln!("could not append to {}: {e}", std::path::Path::new(&path).display());
            }
        }
    }
}

/// A global allocator that tracks live and peak heap bytes, for memory targets.
///
/// Install it in a bench binary with `#[global_allocator] static A: CountingAlloc = CountingAlloc::new();`.
#[derive(Debug)]
pub struct CountingAlloc {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingAlloc {
    /// A fresh counter.
    pub const fn new() -> Self {
        CountingAlloc { live: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    /// Bytes currently allocated.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Highest `live` since the last [`CountingAlloc::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak window at the current live size.
    pub fn reset_peak(&self) {
        self.peak.store(self.live(), Ordering::Relaxed);
    }

    fn add(&self, n: usize) {
        let live = self.live.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s guarantees
// carry over; the counters are plain atomics and never influence the returned memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass through.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `alloc` above (i.e. by `System`) with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr`/`layout` came from this allocator (hence from `System`).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.live.fetch_sub(layout.size(), Ordering::Relaxed);
            self.add(new_size);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_reflects_the_slower_side() {
        let row = compare(
            "sleep",
            Plan { rounds: 2, per_round: 3, warmup: 0 },
            "1ms",
            || std::thread::sleep(Duration::from_millis(1)),
            "3ms",
            || std::thread::sleep(Duration::from_millis(3)),
        );
        assert!(row.ratio() > 1.5, "ratio {}", row.ratio());
        assert_eq!(row.baseline.samples, 6);
        let md = Report { title: "t".into(), rows: vec![row.clone()], ..Default::default() }.markdown();
        assert!(md.contains("| sleep | 1ms |"), "{md}");
        assert!(md.contains("median (p10–p90) |") && !md.contains("p99"), "{md}");
        let mut with = Report::new("t").with_p99();
        with.push(row);
        let md = with.markdown();
        assert!(md.contains("p50 (p10–p90; p99)") && md.matches("; p99 ").count() == 2, "{md}");
    }

    #[test]
    fn stats_are_order_statistics() {
        let s = Stats::from_samples((1..=11).rev().map(Duration::from_micros).collect());
        assert_eq!(s.median, Duration::from_micros(6));
        assert_eq!(s.p10, Duration::from_micros(2));
        assert_eq!(s.p90, Duration::from_micros(10));
        let s = Stats::from_samples((1..=200).rev().map(Duration::from_micros).collect());
        assert_eq!(s.p99, Duration::from_micros(198));
    }
}
