//! `svsm-host igvm measure` of a 16 MiB IGVM file against `sha384sum` of the same file, in the same run.
//!
//! The launch digest is one SHA-384 per 4 KiB page plus one per 0x70-byte PAGE_INFO, so hashing the file once
//! is its floor. Rows: the two commands as processes (start-up, read, parse, hash), and the same work in
//! process (`svsm_igvm::measure` on the bytes vs one SHA-384 over them). Target: <= 2x.

use std::process::Command;

use sha2::Digest as _;
use svsm_benchkit::{Plan, Report, Target, compare};
use svsm_igvm::testing::large_image;
use svsm_igvm::{IgvmCrateRules, measure};

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("large.igvm");
    let bytes = large_image(16 << 20).build().expect("build the 16 MiB IGVM file");
    std::fs::write(&file, &bytes).expect("write the IGVM file");
    let host = env!("CARGO_BIN_EXE_svsm-host");
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let mut report = Report::new("IGVM: launch digest of a 16 MiB file vs SHA-384 of the file");
    report.note(format!("file: {} bytes, {} pages of data and a VMSA", bytes.len(), (16 << 20) / 4096));
    let mut row = compare(
        "igvm measure (process) vs sha384sum",
        Plan::new(10, 3),
        "sha384sum FILE",
        || run(Command::new("sha384sum").arg(&file)),
        "svsm-host igvm measure --json FILE",
        || run(Command::new(host).args(["--log", "warn", "igvm", "measure", "--json"]).arg(&file)),
    );
    row.target = Some(Target::AtMost(2.0));
    report.push(row);
    let mut row = compare(
        "in process: measure() vs SHA-384 of the bytes",
        Plan::new(10, 3),
        "sha2 Sha384 over the file bytes",
        || {
            std::hint::black_box(sha2::Sha384::digest(&bytes));
        },
        "svsm_igvm::measure (parse + digest)",
        || {
            std::hint::black_box(measure(&bytes, &IgvmCrateRules).expect("measure"));
        },
    );
    row.target = Some(Target::AtMost(2.0));
    report.push(row);
    report.emit();
}
