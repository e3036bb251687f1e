//! Window mode (`LedgerMode::Window { seconds }`) bounds what a host rollback can lose: only commits
//! acknowledged within T of the run's last acknowledged commit, only of the run that crashed, nothing after
//! a clean close, and never a fork. A random campaign of commits, clock jumps, lost ledger answers, host
//! snapshots, crashes, clean closes and host rollbacks checks exactly that against a model of what the
//! guest was told. `SVSM_LONG_TESTS=1` runs many more seeds and steps.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{key, opts};
use svsm_block::{BlockDevice, BlockError, DeviceInfo, MemDisk, WriteMode};
use svsm_store::{
    FormatParams, LedgerMode, ManualClock, MemLedger, MemLedgerFault, OpenOptions, SeededRandom, Store,
    StoreError, VolumeId,
};

const ID: u64 = 0x1_0000;
const T_SECONDS: u32 = 5;
const T_MS: u64 = T_SECONDS as u64 * 1000;

/// The host's view of the running VM's disk: it can copy the image at any moment.
#[derive(Debug, Clone)]
struct HostDisk(Rc<RefCell<MemDisk>>);

impl HostDisk {
    fn new(d: MemDisk) -> Self {
        HostDisk(Rc::new(RefCell::new(d)))
    }
    fn snapshot(&self) -> MemDisk {
        self.0.borrow().clone()
    }
}

impl BlockDevice for HostDisk {
    fn info(&self) -> DeviceInfo {
        self.0.borrow().info()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.0.borrow_mut().read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError> {
        self.0.borrow_mut().write_blocks(lba, buf, mode)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.0.borrow_mut().flush()
    }
}

type S = Store<HostDisk, MemLedger>;

/// One state the guest's history holds: the value it wrote, when the commit was acknowledged (`None`:
/// format), and by which run.
#[derive(Debug, Clone, Copy)]
struct Entry {
    value: u64,
    acked_ms: Option<u64>,
    run: u64,
}

/// What the guest was told, and what the host may therefore take away.
#[derive(Debug)]
struct Model {
    /// The chain of states of the live history, oldest first.
    chain: Vec<Entry>,
    /// Commits that failed with an unknown outcome and were then discarded: (value, index of their base
    /// in `chain` at the time). They were durable, so a later open may legitimately surface one.
    unacked: Vec<(u64, usize)>,
    run: u64,
    run_closed: bool,
    /// Every value ever in `chain` and later cut off by a rollback (a fork: must never come back).
    abandoned: Vec<u64>,
}

fn value_of(s: &mut S) -> u64 {
    match s.get(ID).unwrap() {
        None => 0,
        Some(b) => u64::from_le_bytes(b.as_slice().try_into().unwrap()),
    }
}

fn open(
    img: MemDisk,
    ledger: &MemLedger,
    clock: &ManualClock,
    seed: u64,
) -> Result<(S, HostDisk), StoreError> {
    let host = HostDisk::new(img);
    let mut o: OpenOptions = opts(seed);
    o.clock = Some(Box::new(clock.clone()));
    Store::open(host.clone(), &key(), ledger.clone(), o).map(|s| (s, host))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Default)]
struct Tally {
    commits: u64,
    advancing_commits: u64,
    rollbacks_accepted: u64,
    rollbacks_refused: u64,
    commits_lost: u64,
    crashes: u64,
    closes: u64,
    unknown_outcomes: u64,
}

impl Model {
    /// An open produced a state holding `value`: check it is one the rules allow and make it the live tip.
    /// Returns how many acknowledged commits the host took away.
    fn opened(&mut self, value: u64, image: &str) -> u64 {
        // The state opened is in the live history, or a durable commit whose outcome was unknown and which
        // was discarded, on top of a state of the live history (its base).
        let (at, surfaced) = match self.chain.iter().rposition(|e| e.value == value) {
            Some(i) => (i, false),
            None => {
                assert!(
                    !self.abandoned.contains(&value),
                    "{image}: a fork (value {value}, cut off earlier) was accepted"
                );
                let &(_, base) =
                    self.unacked.iter().find(|(v, _)| *v == value).unwrap_or_else(|| {
                        panic!("{image}: opened value {value}, which no live commit wrote")
                    });
                (base, true)
            }
        };
        let lost: Vec<Entry> = self.chain[at + 1..].to_vec();
        if !lost.is_empty() {
            assert!(!self.run_closed, "{image}: rollback of {} commits after a clean close", lost.len());
            let last_ack =
                self.chain.iter().rev().find_map(|e| e.acked_ms.filter(|_| e.run == self.run)).unwrap_or(0);
            for e in &lost {
                assert_eq!(e.run, self.run, "{image}: rolled back across a boot (lost {e:?})");
                if let Some(t) = e.acked_ms {
                    assert!(
                        t + T_MS > last_ack,
                        "{image}: lost commit {e:?} acknowledged {} ms before the run's last one (window {T_MS})",
                        last_ack - t
                    );
                }
            }
        }
        let n = lost.iter().filter(|e| e.acked_ms.is_some()).count() as u64;
        self.abandoned.extend(lost.iter().map(|e| e.value));
        self.chain.truncate(at + 1);
        if surfaced {
            self.chain.push(Entry { value, acked_ms: None, run: self.run });
        }
        self.abandoned.extend(self.unacked.drain(..).map(|(v, _)| v).filter(|&v| v != value));
        n
    }
}

fn campaign(seed: u64, steps: u64, tally: &mut Tally) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let clock = ManualClock::new(1_000_000);
    let ledger = MemLedger::new();
    let disk = MemDisk::new(4096, 96).unwrap();
    let mut dev = disk.clone();
    let f = Store::<_, MemLedger>::format(
        &mut dev,
        &key(),
        FormatParams::new(LedgerMode::Window { seconds: T_SECONDS }, Box::new(SeededRandom::new(seed))),
    )
    .unwrap();
    let vol: VolumeId = f.volume_id;
    let mut o = opts(seed + 1);
    o.enroll = true;
    o.clock = Some(Box::new(clock.clone()));
    let host = HostDisk::new(dev);
    let mut s: S = Store::open(host.clone(), &key(), ledger.clone(), o).unwrap();
    let mut host = host;
    let mut model = Model {
        chain: vec![Entry { value: 0, acked_ms: None, run: 1 }],
        unacked: vec![],
        run: 1,
        run_closed: false,
        abandoned: vec![],
    };
    let mut snapshots: Vec<MemDisk> = Vec::new();
    let mut next_value = 1u64;
    let mut open_seed = seed * 1000;

    for step in 0..steps {
        let roll = rng.below(100);
        if roll < 70 {
            // A commit, after some time passes (mostly well inside the window, sometimes an idle gap).
            clock.advance(if rng.below(10) == 0 { rng.below(3 * T_MS) } else { rng.below(T_MS / 4) });
            if rng.below(12) == 0 {
                ledger.set_fault(if rng.below(2) == 0 {
                    MemLedgerFault::LoseAck
                } else {
                    MemLedgerFault::LoseRequest
                });
            }
            let v = next_value;
            next_value += 1;
            let cas_before = ledger.cas_count();
            let mut tx = s.begin();
            tx.put(ID, &v.to_le_bytes()).unwrap();
            match tx.commit() {
                Ok(_) => {
                    tally.commits += 1;
                    if ledger.cas_count() > cas_before {
                        tally.advancing_commits += 1;
                    }
                    model.chain.push(Entry { value: v, acked_ms: Some(clock.get()), run: model.run });
                }
                Err(StoreError::Ledger(_)) => {
                    // Only a commit due to advance talks to the ledger; settle it as the guest would.
                    tally.unknown_outcomes += 1;
                    s.sync_ledger().unwrap();
                    if value_of(&mut s) == v {
                        // The ledger had applied it: the guest learns it is committed now.
                        model.chain.push(Entry { value: v, acked_ms: Some(clock.get()), run: model.run });
                    } else {
                        model.unacked.push((v, model.chain.len() - 1));
                    }
                }
                Err(e) => panic!("seed {seed} step {step}: commit failed: {e}"),
            }
            ledger.set_fault(MemLedgerFault::None);
            assert_eq!(value_of(&mut s), model.chain.last().unwrap().value);
        } else if roll < 80 {
            snapshots.push(host.snapshot());
            if snapshots.len() > 12 {
                snapshots.remove(rng.below(12) as usize);
            }
        } else if roll < 90 {
            clock.advance(rng.below(2 * T_MS));
            s.advance_if_due().unwrap();
        } else {
            // The run ends: a crash (most often) or a clean close; then the host presents an image.
            let closed = rng.below(4) == 0;
            let live = if closed {
                tally.closes += 1;
                let tip = s.ledger_record();
                let d = s.close().unwrap().snapshot();
                // After a clean close the ledger holds exactly the live tip. (A discarded commit of unknown
                // outcome may still sit in the other slot and surface at the next open: it was durable.)
                assert_eq!(ledger.record(&vol), Some(tip), "clean close did not advance the ledger");
                d
            } else {
                tally.crashes += 1;
                let (d, _) = s.into_parts();
                d.snapshot()
            };
            model.run_closed = closed;
            // The host keeps the image of every run it ends: once an older copy is accepted instead, this
            // one is a fork with a higher generation, the case the anchor must refuse.
            snapshots.push(live.clone());
            clock.advance(rng.below(2 * T_MS));
            let ledger_before = ledger.record(&vol);
            let mut opened = None;
            if !snapshots.is_empty() && rng.below(3) != 0 {
                // Mostly one of the latest copies (inside or just outside the window), sometimes any.
                let n = snapshots.len() as u64;
                let pick = if rng.below(2) == 0 { n - 1 - rng.below(n.min(3)) } else { rng.below(n) };
                let img = snapshots[pick as usize].clone();
                open_seed += 1;
                match open(img, &ledger, &clock, open_seed) {
                    Ok((mut t, h)) => {
                        let v = value_of(&mut t);
                        let lost = model.opened(v, "older image");
                        if lost > 0 {
                            tally.rollbacks_accepted += 1;
                            tally.commits_lost += lost;
                        }
                        opened = Some((t, h));
                    }
                    Err(StoreError::Forked { .. } | StoreError::Rollback { .. }) => {
                        tally.rollbacks_refused += 1;
                        assert_eq!(ledger.record(&vol), ledger_before, "a refused open moved the ledger");
                    }
                    Err(e) => panic!("seed {seed} step {step}: unexpected open error {e}"),
                }
            }
            let (t, h) = match opened {
                Some(x) => x,
                None => {
                    open_seed += 1;
                    let (mut t, h) = open(live, &ledger, &clock, open_seed)
                        .unwrap_or_else(|e| panic!("seed {seed} step {step}: live image refused: {e}"));
                    let v = value_of(&mut t);
                    assert_eq!(model.opened(v, "live image"), 0, "the live image lost commits");
                    (t, h)
                }
            };
            // Open advanced the ledger to the opened state: the window restarts, in a new run.
            assert_eq!(ledger.record(&vol), Some(t.ledger_record()), "open did not advance the ledger");
            s = t;
            host = h;
            model.run += 1;
            model.run_closed = false;
            for e in model.chain.iter_mut() {
                // Everything that survived an open is protected for good; re-label so the per-run checks apply
                // only to commits of the new run.
                e.run = 0;
            }
        }
    }
}

fn run(seeds: std::ops::Range<u64>, steps: u64) {
    let mut tally = Tally::default();
    for seed in seeds {
        campaign(seed, steps, &mut tally);
    }
    eprintln!("window campaign: {tally:?}");
    // The campaign must have exercised what it claims to check.
    assert!(tally.commits > 0 && tally.advancing_commits > 0, "{tally:?}");
    assert!(tally.advancing_commits < tally.commits, "every commit advanced: not a window");
    assert!(tally.rollbacks_accepted > 0, "no rollback inside the window was ever tried: {tally:?}");
    assert!(tally.rollbacks_refused > 0, "no rollback was ever refused: {tally:?}");
    assert!(tally.crashes > 0 && tally.closes > 0 && tally.unknown_outcomes > 0, "{tally:?}");
}

#[test]
fn window_bounds_what_a_rollback_can_lose_short() {
    run(1..9, 400);
}

#[test]
fn window_bounds_what_a_rollback_can_lose_long() {
    if std::env::var_os("SVSM_LONG_TESTS").is_none() {
        eprintln!("skipped: set SVSM_LONG_TESTS=1 for the long window campaign");
        return;
    }
    run(100..400, 2000);
}
