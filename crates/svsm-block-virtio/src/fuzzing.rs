//! The adversarial campaign: the real driver, through [`VirtioBlk`] and [`SevBounceHal`], against a hostile
//! `svsm-virtio-model` device, with an oracle that knows what every request deserved.
//!
//! Shared by the fuzz target (`fuzz/fuzz_targets/adversarial_device.rs`) and the unit tests (thousands of
//! seeded runs). A run panics if and only if something is wrong: an outcome that is not the one the device's
//! behaviour calls for, wrong data in a successful read, a driver protocol violation the device recorded, or a
//! panic inside the driver stack itself.

use svsm_block::{BlockDevice, BlockError, IoCause, IoOp, MemDisk, WriteMode};
use svsm_virtio_model::wire::{S_IOERR, S_OK, S_UNSUPP, T_FLUSH, T_GET_ID, T_IN, T_OUT};
use svsm_virtio_model::{
    Action, Adversary, Choices, ConfigAttack, Event, GuestMemory, ModelHandle, ModelOptions, VirtioBlkModel,
};

use crate::blk::{VirtioBlk, VirtioBlkConfig};
use crate::hal::SevBounceHal;
use crate::host::HostTestPlatform;
use crate::pool::BouncePool;

/// The HAL every host test uses: the real bounce HAL over the heap-backed test platform.
pub type HostHal = SevBounceHal<HostTestPlatform>;
/// A virtio-blk device on the model, as the tests build it.
pub type ModelBlk = VirtioBlk<HostHal, VirtioBlkModel>;

/// The guest-RAM arena a model device may touch: exactly the host-shared pool, nothing else.
pub fn shared_guest_memory() -> GuestMemory {
    use crate::api::BouncePlatform;
    HostTestPlatform::init().expect("host test pool must install (256 MiB of heap)");
    let pool: &BouncePool = HostTestPlatform::pool();
    let (gpa, vaddr, len) = pool.region().expect("installed above");
    let mut mem = GuestMemory::new();
    // SAFETY: the pool's region is leaked heap memory that lives for the rest of the program; the driver side
    // only touches it through raw pointers (the HAL's volatile copies, virtio-drivers' ring pointers), and the
    // model runs synchronously inside `notify`, so no Rust reference into it is live while the model writes.
    unsafe { mem.add_region(gpa, vaddr, len) }.expect("one region cannot overlap");
    mem
}

/// A model device over `backing` that may only touch shared memory, and a handle to inspect it.
pub fn model(backing: Box<dyn BlockDevice>, opts: ModelOptions) -> (VirtioBlkModel, ModelHandle) {
    let m = VirtioBlkModel::new(backing, shared_guest_memory(), opts);
    let h = m.handle();
    (m, h)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    Status,
    NotSupported,
    Misbehaved,
    Timeout,
}

fn class(r: &Result<(), BlockError>) -> Result<Expect, String> {
    Ok(match r {
        Ok(()) => Expect::Ok,
        Err(BlockError::Io { cause: IoCause::DeviceStatus { status: 1, .. }, .. }) => Expect::Status,
        Err(BlockError::Io { cause: IoCause::NotSupported, .. }) => Expect::NotSupported,
        Err(BlockError::Io { cause: IoCause::Timeout, .. }) => Expect::Timeout,
        Err(BlockError::DeviceMisbehaved { .. }) => Expect::Misbehaved,
        Err(other) => return Err(format!("imprecise or unexpected error {other:?}")),
    })
}

/// What an operation deserved, from what the device did to its requests: (outcome, poisons the handle,
/// index of the deciding event).
fn expectation(events: &[Event]) -> (Expect, bool, Option<usize>) {
    for (i, e) in events.iter().enumerate() {
        let blocking_kind = e.kind == T_FLUSH || e.kind == T_GET_ID;
        let x = match e.action {
            // The driver reads ids as u16 and ignores the used length: both are accepted (see crate docs).
            Action::Honest | Action::AliasedId(_) | Action::WrongLen(_) => match e.honest_status {
                S_OK => continue,
                S_IOERR => Expect::Status,
                S_UNSUPP => Expect::NotSupported,
                _ => Expect::Misbehaved,
            },
            Action::GarbageStatus(3) => Expect::Misbehaved,
            Action::GarbageStatus(_) if blocking_kind => Expect::Status,
            Action::GarbageStatus(_) => Expect::Misbehaved,
            Action::SpuriousIoErr => Expect::Status,
            Action::SpuriousUnsupp => Expect::NotSupported,
            // An unwritten status reads back as the 0xFF poison: undefined.
            Action::NoStatus if blocking_kind => Expect::Status,
            Action::NoStatus => Expect::Misbehaved,
            Action::WrongId(_) | Action::Duplicate | Action::IdxJump(_) => {
                return (Expect::Misbehaved, true, Some(i));
            }
            Action::NoCompletion => return (Expect::Timeout, true, Some(i)),
        };
        return (x, false, Some(i));
    }
    (Expect::Ok, false, None)
}

/// The oracle's view of the medium: the bytes it must hold, per 512-byte sector known or not.
struct Shadow {
    data: Vec<u8>,
    known: Vec<bool>,
}

impl Shadow {
    fn sectors(&self, off: u64, len: usize) -> core::ops::Range<usize> {
        let total = self.known.len() as u64;
        let start = (off / 512).min(total) as usize;
        let end = (off.saturating_add(len as u64).div_ceil(512)).min(total) as usize;
        start..end
    }
}

/// What one run exercised, so a campaign can check its own coverage.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The configuration attack the device used.
    pub attack: ConfigAttack,
    /// Whether the probe succeeded (and operations ran).
    pub probed: bool,
    /// Whether the handle ended up poisoned.
    pub poisoned: bool,
    /// Every request the device saw, with what it did to it.
    pub events: Vec<Event>,
}

/// One adversarial run: probe a hostile device, then a sequence of reads, writes and flushes, each checked.
pub fn run(mut choices: Choices) -> RunSummary {
    let backing_bs = if choices.byte() & 1 == 0 { 512 } else { 4096 };
    let backing_blocks = if backing_bs == 512 { 64 } else { 16 };
    let backing = MemDisk::new(backing_bs, backing_blocks).expect("valid geometry");
    let hostility = choices.byte() / 4;
    let max_transfer_bytes = [4096, 8192, 1 << 20][usize::from(choices.byte() % 3)];
    let opts = ModelOptions {
        flush: !choices.byte().is_multiple_of(4),
        adversary: Some(Adversary { choices: choices.fork(), hostility, allow_stall: true }),
        ..ModelOptions::default()
    };
    let (dev, handle) = model(Box::new(backing), opts);
    let attack = handle.config_attack();
    let refused = RunSummary { attack, probed: false, poisoned: false, events: Vec::new() };
    let config = VirtioBlkConfig { max_transfer_bytes, poll_limit: 64 };
    let probed = ModelBlk::with_config(dev, config);
    let mut blk = match (attack, probed) {
        (_, Ok(blk))
            if !matches!(
                attack,
                ConfigAttack::GenerationForever | ConfigAttack::QueueInUse | ConfigAttack::TinyQueue
            ) =>
        {
            if let ConfigAttack::BlkSize(b) = attack {
                assert!(b.is_power_of_two() && (512..=65536).contains(&b), "accepted blk_size {b}");
            }
            blk
        }
        (
            ConfigAttack::GenerationForever | ConfigAttack::QueueInUse | ConfigAttack::TornCapacity,
            Err(BlockError::DeviceMisbehaved { op: IoOp::Setup, .. }),
        ) => return refused,
        (
            ConfigAttack::TinyQueue,
            Err(BlockError::Io { op: IoOp::Setup, cause: IoCause::NotSupported, .. }),
        ) => return refused,
        (ConfigAttack::BlkSize(b), Err(BlockError::InvalidGeometry { block_size, .. }))
            if block_size == b =>
        {
            assert!(!b.is_power_of_two() || !(512..=65536).contains(&b), "refused valid blk_size {b}");
            return refused;
        }
        (attack, other) => panic!("probe under {attack:?} gave {other:?}"),
    };
    assert!(handle.errors().is_empty(), "driver violated the protocol during probe: {:?}", handle.errors());

    let info = blk.info();
    let bs = info.block_size as usize;
    let capacity_bytes = handle.real_capacity_sectors() * 512;
    let mut shadow =
        Shadow { data: vec![0; capacity_bytes as usize], known: vec![true; (capacity_bytes / 512) as usize] };
    let mut poisoned = false;

    let ops = 8 + usize::from(choices.byte() % 24);
    for op_index in 0..ops {
        let kind = choices.byte() % 10;
        let lba = u64::from(choices.byte()) % (info.num_blocks + 3);
        let blocks = match choices.byte() % 8 {
            0 => 0,
            7 => 1 + u64::from(choices.byte() % 40),
            n => u64::from(n),
        };
        let len = blocks as usize * bs;
        let before = handle.event_count();
        let in_range = lba.checked_add(blocks).is_some_and(|end| end <= info.num_blocks);
        let off = lba * bs as u64;
        let (result, read_back, written) = match kind {
            0..=3 => {
                let mut buf = vec![0xA5; len];
                let r = blk.read_blocks(lba, &mut buf);
                (r, Some(buf), None)
            }
            4..=7 => {
                let data: Vec<u8> =
                    (0..len).map(|i| (op_index as u8).wrapping_mul(31) ^ (i / 512) as u8).collect();
                let mode = if kind == 7 { WriteMode::Durable } else { WriteMode::Cached };
                let r = blk.write_blocks(lba, &data, mode);
                (r, None, Some(data))
            }
            8 => (blk.flush(), None, None),
            _ => (blk.device_id().map(|_| ()), None, None),
        };
        let events = handle.events();
        let events = &events[before..];
        let is_transfer = kind <= 7;
        if is_transfer && !in_range {
            assert!(matches!(result, Err(BlockError::OutOfRange { .. })), "op {op_index}: {result:?}");
            assert!(events.is_empty(), "an out-of-range request reached the device");
            continue;
        }
        if poisoned && !(is_transfer && blocks == 0) {
            assert!(
                matches!(result, Err(BlockError::DeviceMisbehaved { .. })),
                "poisoned handle gave {result:?}"
            );
            assert!(events.is_empty(), "a poisoned handle still talked to the device");
            continue;
        }
        let (expect, poisons, decisive) = expectation(events);
        let got = class(&result).unwrap_or_else(|e| panic!("op {op_index} ({kind}): {e}; events {events:?}"));
        if kind == 8 && info.read_only {
            assert_eq!(got, Expect::Ok);
            continue;
        }
        assert_eq!(
            got, expect,
            "op {op_index} (kind {kind}, lba {lba}, {blocks} blocks): {result:?}; events {events:?}"
        );
        if let Some(i) = decisive {
            assert_eq!(i + 1, events.len(), "requests were sent after a failed one: {events:?}");
        }
        poisoned |= poisons;
        assert_eq!(blk.broken().is_some(), poisoned, "poisoning disagrees with the device's behaviour");
        if result.is_ok() && is_transfer && blocks > 0 {
            let moved: usize =
                events.iter().filter(|e| e.kind == T_IN || e.kind == T_OUT).map(|e| e.data_len).sum();
            assert_eq!(moved, len, "the device saw a different amount of data");
            assert!(
                events.iter().all(|e| e.data_len <= max_transfer_bytes.max(bs)),
                "a request exceeded the limit"
            );
        }
        // Bring the shadow up to date and check read data.
        let range = shadow.sectors(off, len);
        match (result.is_ok(), read_back, written) {
            (true, Some(buf), _) => {
                for s in range {
                    let at = s * 512 - off as usize;
                    if shadow.known[s] {
                        assert!(
                            buf[at..at + 512] == shadow.data[s * 512..s * 512 + 512],
                            "op {op_index}: sector {s} read back wrong data"
                        );
                    } else {
                        shadow.data[s * 512..s * 512 + 512].copy_from_slice(&buf[at..at + 512]);
                        shadow.known[s] = true;
                    }
                }
            }
            (true, None, Some(data)) => {
                for s in range {
                    let at = s * 512 - off as usize;
                    shadow.data[s * 512..s * 512 + 512].copy_from_slice(&data[at..at + 512]);
                    shadow.known[s] = true;
                }
            }
            (false, None, Some(_)) => range.for_each(|s| shadow.known[s] = false),
            _ => {}
        }
    }
    assert!(handle.errors().is_empty(), "driver violated the protocol: {:?}", handle.errors());
    // The medium itself must match what the oracle knows (no write landed anywhere else).
    let image = handle.with_backing(|b| {
        let mut all = vec![0u8; capacity_bytes as usize];
        b.read_blocks(0, &mut all).map(|_| all)
    });
    let image = image.expect("backing readable");
    for (s, known) in shadow.known.iter().enumerate() {
        if *known {
            assert!(
                image[s * 512..s * 512 + 512] == shadow.data[s * 512..s * 512 + 512],
                "sector {s} on the medium differs"
            );
        }
    }
    RunSummary { attack, probed: true, poisoned, events: handle.events() }
}

/// [`run`] over a fuzz input.
pub fn run_bytes(data: &[u8]) -> RunSummary {
    run(Choices::bytes(data))
}

/// [`run`] from a seed.
pub fn run_seeded(seed: u64) -> RunSummary {
    run(Choices::seeded(seed))
}
