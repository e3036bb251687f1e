//! Shared setup: an in-process SVSM (simulated RMP/vCPUs, unsigned-report SNP double) with the UEFI
//! protocol registered on a store-backed volume in an image file, and an edk2-behaving guest on a direct
//! transport. Dropping the SVSM without closing the store is a crash (kill -9) as far as the volume knows.
#![allow(dead_code)]

use std::path::Path;

use svsm_block::FileDisk;
use svsm_protocol::doubles::UnsignedReportDouble;
use svsm_protocol::guest::{DirectTransport, Guest};
use svsm_protocol::model::{SimulatedRmp, SimulatedVcpus};
use svsm_protocol::{Svsm, SvsmConfig, VecGuestMemory};
use svsm_store::{LedgerMode, MemLedger, OpenOptions, SeededRandom, Store, StoreError, StoreKey};
use svsm_uefi::guest::UefiGuest;
use svsm_uefi::persist::StoreVariableStorage;
use svsm_uefi::{UefiConfig, UefiProtocol, UefiVariables};

pub const MEM: usize = 0x50000;
pub const SVSM_BASE: u64 = 0x4F000;
pub const CAA: u64 = 0x1000;
pub const BUFFER: u64 = 0x10000;
pub const KEY: [u8; 32] = [0x17; 32];

pub type Volume = Store<FileDisk, MemLedger>;
pub type Service = UefiVariables<StoreVariableStorage<FileDisk, MemLedger>>;

/// Formats `path` (1 MiB) as a strict-mode volume; the ledger enrols it at the first open.
pub fn format(path: &Path) {
    let key = StoreKey::from_bytes(KEY);
    let mut dev = FileDisk::create(path, 4096, 256).expect("image");
    let params = svsm_store::FormatParams::new(LedgerMode::Strict, Box::new(SeededRandom::new(1)));
    Store::<_, MemLedger>::format(&mut dev, &key, params).expect("format");
}

/// Opens the image against `ledger`.
pub fn open(path: &Path, ledger: &MemLedger) -> Result<Volume, StoreError> {
    let dev = FileDisk::open(path, 4096, false).expect("image");
    let mut options = OpenOptions::new(Box::new(SeededRandom::new(7)));
    options.enroll = true;
    Store::open(dev, &StoreKey::from_bytes(KEY), ledger.clone(), options)
}

pub fn service(path: &Path, ledger: &MemLedger) -> Service {
    let volume = open(path, ledger).expect("volume opens");
    UefiVariables::open(StoreVariableStorage::open(volume).expect("UEFI volume"), UefiConfig::default())
        .expect("service")
}

pub fn bare_svsm() -> Svsm {
    Svsm::new(
        SvsmConfig { svsm_base: SVSM_BASE, svsm_size: 0x1000, initial_caa: CAA },
        Box::new(SimulatedRmp::new()),
        Box::new(SimulatedVcpus::new(1)),
        None,
        Box::new(UnsignedReportDouble { certificates: Vec::new(), fail: false, requests: 0 }),
    )
}

pub fn svsm_with(service: Service) -> Svsm {
    bare_svsm().with_protocol(Box::new(UefiProtocol::new(service))).expect("register")
}

pub fn transport(svsm: Svsm) -> DirectTransport {
    DirectTransport { svsm, memory: VecGuestMemory::new(0, MEM) }
}

pub fn guest(svsm: Svsm) -> UefiGuest<DirectTransport> {
    UefiGuest::probe(Guest::new(transport(svsm), CAA, 0x2000, SVSM_BASE), BUFFER).expect("protocol 4 offered")
}
