//! The hostile host: decisions the model takes against the driver, from a seed or from fuzz bytes.
//!
//! Every decision is drawn from a [`Choices`] stream, so a seeded run and a fuzz input are replayable, and
//! every decision is logged as an [`Event`] so a test can say exactly which outcome each request deserved.

/// A stream of decisions: a seeded xorshift generator or the bytes of a fuzz input.
#[derive(Debug, Clone)]
pub enum Choices {
    /// Pseudo-random bytes from a seed (xorshift64*).
    Seeded(u64),
    /// The bytes of a fuzz input, then zeroes (honest behaviour) once they run out.
    Bytes {
        /// The input.
        data: Vec<u8>,
        /// Next byte to use.
        pos: usize,
    },
}

impl Choices {
    /// Decisions from a seed. The same seed gives the same decisions.
    pub fn seeded(seed: u64) -> Self {
        Choices::Seeded(seed | 1)
    }

    /// Decisions from fuzz bytes.
    pub fn bytes(data: &[u8]) -> Self {
        Choices::Bytes { data: data.to_vec(), pos: 0 }
    }

    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        match self {
            Choices::Seeded(x) => {
                *x ^= *x >> 12;
                *x ^= *x << 25;
                *x ^= *x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            }
            Choices::Bytes { data, pos } => {
                let b = data.get(*pos).copied().unwrap_or(0);
                *pos = pos.saturating_add(1);
                b
            }
        }
    }

    /// An independent stream for another party (the device), so its decisions do not mirror the caller's.
    pub fn fork(&mut self) -> Choices {
        match self {
            Choices::Seeded(_) => {
                let seed = u64::from(self.u32()) << 32 | u64::from(self.u32());
                Choices::seeded(seed ^ 0x9E37_79B9_7F4A_7C15)
            }
            Choices::Bytes { data, pos } => {
                let rest: Vec<u8> = data.get(*pos..).unwrap_or(&[]).iter().rev().copied().collect();
                Choices::Bytes { data: rest, pos: 0 }
            }
        }
    }

    /// The next little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

/// What the device does wrong (or not) when it completes one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Follows the protocol.
    Honest,
    /// Writes a status byte that virtio-blk does not define (3..=255).
    GarbageStatus(u8),
    /// Completes with `VIRTIO_BLK_S_IOERR` although nothing failed.
    SpuriousIoErr,
    /// Completes with `VIRTIO_BLK_S_UNSUPP`.
    SpuriousUnsupp,
    /// Completes without writing the status byte at all.
    NoStatus,
    /// Puts a descriptor id the driver never submitted (within 16 bits) in the used ring.
    WrongId(u32),
    /// Puts the right id plus a multiple of 65536 in the used ring (out of range, but equal modulo 2^16).
    AliasedId(u32),
    /// Reports a used length that has nothing to do with what was written.
    WrongLen(u32),
    /// Completes the request twice (two used-ring entries for one chain).
    Duplicate,
    /// Moves `used.idx` forward by this many entries (>= 2) instead of 1, leaving stale entries behind.
    IdxJump(u16),
    /// Never completes the request (only used for reads and writes, see the crate docs).
    NoCompletion,
}

impl Action {
    /// Draws an action: honest with probability about (256 - `hostility`) / 256.
    ///
    /// `can_stall` says whether the request may be left uncompleted: virtio-drivers' flush and get-id have no
    /// non-blocking form, and its blocking form spins forever on a device that never answers.
    pub fn draw(choices: &mut Choices, hostility: u8, can_stall: bool) -> Action {
        if choices.byte() >= hostility {
            return Action::Honest;
        }
        match choices.byte() % 11 {
            0 => Action::GarbageStatus(3u8.saturating_add(choices.byte() % 253)),
            1 => Action::SpuriousIoErr,
            2 => Action::SpuriousUnsupp,
            3 => Action::NoStatus,
            4 => Action::WrongId(choices.u32() | 0x10),
            5 => Action::AliasedId(u32::from(choices.byte() % 255 + 1) << 16),
            6 => Action::WrongLen(choices.u32()),
            7 => Action::Duplicate,
            8 => Action::IdxJump(2 + u16::from(choices.byte() % 20)),
            9 if can_stall => Action::NoCompletion,
            _ => Action::Honest,
        }
    }
}

/// How the device misreports its configuration while the driver probes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAttack {
    /// Reports its configuration honestly.
    None,
    /// Bumps the config generation on each of the first `n` reads, so consistent reads must retry.
    GenerationChurn(u8),
    /// Bumps the config generation on every read, forever.
    GenerationForever,
    /// Reports a capacity whose value changes on every read, without touching the generation (torn reads).
    TornCapacity,
    /// Reports this capacity (sectors) instead of the real one.
    WrongCapacity(u64),
    /// Offers `VIRTIO_BLK_F_BLK_SIZE` with this block size, whatever the backing store uses.
    BlkSize(u32),
    /// Reports a different `blk_size` on every read.
    BlkSizeFlapping,
    /// Claims queue 0 is already in use.
    QueueInUse,
    /// Offers a maximum queue size smaller than the driver's 16.
    TinyQueue,
}

impl ConfigAttack {
    /// Draws a configuration attack (none with probability about 1/2).
    pub fn draw(choices: &mut Choices) -> ConfigAttack {
        let b = choices.byte();
        if b < 128 {
            return ConfigAttack::None;
        }
        match b % 9 {
            0 => ConfigAttack::GenerationChurn(choices.byte() % 8 + 1),
            1 => ConfigAttack::GenerationForever,
            2 => ConfigAttack::TornCapacity,
            3 => {
                ConfigAttack::WrongCapacity(u64::from(choices.u32()) | (u64::from(choices.byte() % 4) << 32))
            }
            4 => ConfigAttack::BlkSize(match choices.byte() % 6 {
                0 => 512,
                1 => 4096,
                2 => 1024,
                3 => 0,
                4 => 1000,
                _ => choices.u32(),
            }),
            5 => ConfigAttack::BlkSizeFlapping,
            6 => ConfigAttack::QueueInUse,
            7 => ConfigAttack::TinyQueue,
            _ => ConfigAttack::None,
        }
    }
}

/// What happened to one request, as the model saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The virtio-blk request type (0 = IN, 1 = OUT, 4 = FLUSH, 8 = GET_ID, others unsupported).
    pub kind: u32,
    /// First sector of the request.
    pub sector: u64,
    /// Data bytes the request carried.
    pub data_len: usize,
    /// The status an honest device would have written.
    pub honest_status: u8,
    /// What the device actually did.
    pub action: Action,
}
