//! Links Debian's libtpms (package `libtpms-dev`). pkg-config prints only `-ltpms`, so no bindgen and no
//! cflags are needed; the FFI declarations are in src/ffi.rs.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-lib=dylib=tpms");
}
