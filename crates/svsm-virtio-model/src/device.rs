//! The virtio-blk device model behind `virtio_drivers::transport::Transport`.
//!
//! The device does all its work synchronously inside [`Transport::notify`]: it reads the new available-ring
//! entries, walks each descriptor chain (direct or INDIRECT), performs the request against the backing
//! [`BlockDevice`], writes the data and the status byte, and publishes `{id, len}` on the used ring with a
//! release fence before the `used.idx` store. By the time the driver starts polling the used ring the answer
//! is already there, so the driver's spin loops never block. An [`Adversary`] may corrupt the answer.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{Ordering, fence};

use svsm_block::{BlockDevice, WriteMode};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error as VirtioError, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::adversary::{Action, Choices, ConfigAttack, Event};
use crate::error::ModelError;
use crate::memory::GuestMemory;
use crate::wire::{self, Descriptor, feature};

/// How the model device presents itself and how hostile it is.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Offer `VIRTIO_BLK_F_FLUSH`.
    pub flush: bool,
    /// Offer `VIRTIO_BLK_F_RO` (also implied by a read-only backing store).
    pub read_only: bool,
    /// Offer `VIRTIO_F_INDIRECT_DESC`.
    pub indirect: bool,
    /// Offer `VIRTIO_F_EVENT_IDX`.
    pub event_idx: bool,
    /// Offer `VIRTIO_BLK_F_BLK_SIZE` with the backing store's block size.
    pub blk_size: bool,
    /// The device's maximum queue size.
    pub max_queue_size: u16,
    /// The GET_ID answer (ASCII, NUL padded).
    pub device_id: [u8; 20],
    /// Report this capacity (sectors) instead of the backing store's, as a device whose medium is smaller
    /// than it claims: requests past the real end then fail with `VIRTIO_BLK_S_IOERR`.
    pub capacity_sectors: Option<u64>,
    /// Answer every FLUSH with this status instead of performing it (e.g. `S_UNSUPP`).
    pub flush_status: Option<u8>,
    /// Actions applied to the first requests, in order, before the adversary (if any) takes over.
    pub scripted: Vec<Action>,
    /// Adversarial behaviour, if any.
    pub adversary: Option<Adversary>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        let mut device_id = [0u8; 20];
        device_id[..10].copy_from_slice(b"svsm-model");
        ModelOptions {
            flush: true,
            read_only: false,
            indirect: true,
            event_idx: true,
            blk_size: true,
            max_queue_size: 256,
            device_id,
            capacity_sectors: None,
            flush_status: None,
            scripted: Vec::new(),
            adversary: None,
        }
    }
}

/// The source and strength of the device's hostility.
#[derive(Debug, Clone)]
pub struct Adversary {
    /// Where decisions come from.
    pub choices: Choices,
    /// Per-request chance of misbehaving, out of 256.
    pub hostility: u8,
    /// Whether requests may be left uncompleted. Only safe when the driver polls with a bound.
    pub allow_stall: bool,
}

#[derive(Debug, Clone, Copy)]
struct Queue {
    size: u16,
    desc: u64,
    driver: u64,
    device: u64,
    last_avail: u16,
    used_idx: u16,
}

#[derive(Debug)]
struct State {
    mem: GuestMemory,
    backing: Box<dyn BlockDevice>,
    opts: ModelOptions,
    config_attack: ConfigAttack,
    status: DeviceStatus,
    driver_features: u64,
    queue: Option<Queue>,
    generation: u32,
    config_reads: u32,
    interrupt: bool,
    broken: bool,
    events: Vec<Event>,
    errors: Vec<ModelError>,
}

/// The model device: a [`Transport`] for `VirtIOBlk`. Clone a [`ModelHandle`] first to inspect it later.
#[derive(Debug)]
pub struct VirtioBlkModel {
    state: Rc<RefCell<State>>,
}

/// A view of the model that stays with the test after the transport moved into the driver.
#[derive(Debug, Clone)]
pub struct ModelHandle {
    state: Rc<RefCell<State>>,
}

impl ModelHandle {
    /// Driver protocol violations the device saw (empty for a correct driver).
    pub fn errors(&self) -> Vec<ModelError> {
        self.state.borrow().errors.clone()
    }

    /// Every request the device completed or dropped, in order, with what it did to it.
    pub fn events(&self) -> Vec<Event> {
        self.state.borrow().events.clone()
    }

    /// Number of requests seen so far.
    pub fn event_count(&self) -> usize {
        self.state.borrow().events.len()
    }

    /// The configuration attack in force.
    pub fn config_attack(&self) -> ConfigAttack {
        self.state.borrow().config_attack
    }

    /// Runs `f` on the backing store (to check or tamper with the medium).
    pub fn with_backing<R>(&self, f: impl FnOnce(&mut dyn BlockDevice) -> R) -> R {
        f(&mut *self.state.borrow_mut().backing)
    }

    /// Capacity of the backing store in 512-byte sectors.
    pub fn real_capacity_sectors(&self) -> u64 {
        let s = self.state.borrow();
        s.backing.info().capacity_bytes() / wire::SECTOR
    }
}

impl VirtioBlkModel {
    /// A device serving `backing`, reaching guest memory only through `mem`.
    pub fn new(backing: Box<dyn BlockDevice>, mem: GuestMemory, mut opts: ModelOptions) -> Self {
        let config_attack = match opts.adversary.as_mut() {
            Some(adv) => ConfigAttack::draw(&mut adv.choices),
            None => ConfigAttack::None,
        };
        let state = State {
            mem,
            backing,
            opts,
            config_attack,
            status: DeviceStatus::empty(),
            driver_features: 0,
            queue: None,
            generation: 0,
            config_reads: 0,
            interrupt: false,
            broken: false,
            events: Vec::new(),
            errors: Vec::new(),
        };
        VirtioBlkModel { state: Rc::new(RefCell::new(state)) }
    }

    /// A handle for inspecting the device after it has been handed to a driver.
    pub fn handle(&self) -> ModelHandle {
        ModelHandle { state: self.state.clone() }
    }
}

impl State {
    fn device_features(&self) -> u64 {
        let mut f = feature::VERSION_1;
        if self.opts.flush {
            f |= feature::BLK_FLUSH;
        }
        if self.opts.read_only || self.backing.info().read_only {
            f |= feature::BLK_RO;
        }
        if self.opts.indirect {
            f |= feature::RING_INDIRECT_DESC;
        }
        if self.opts.event_idx {
            f |= feature::RING_EVENT_IDX;
        }
        let blk_size_attack =
            matches!(self.config_attack, ConfigAttack::BlkSize(_) | ConfigAttack::BlkSizeFlapping);
        if self.opts.blk_size || blk_size_attack {
            f |= feature::BLK_BLK_SIZE;
        }
        f
    }

    fn negotiated(&self, bit: u64) -> bool {
        self.driver_features & bit != 0
    }

    fn config_bytes(&mut self) -> [u8; wire::CFG_LEN] {
        self.config_reads = self.config_reads.wrapping_add(1);
        let real = self.backing.info();
        let mut capacity = self.opts.capacity_sectors.unwrap_or(real.capacity_bytes() / wire::SECTOR);
        let mut blk_size = real.block_size;
        match self.config_attack {
            ConfigAttack::TornCapacity => {
                capacity ^= u64::from(self.config_reads) << 29 | u64::from(self.config_reads)
            }
            ConfigAttack::WrongCapacity(c) => capacity = c,
            ConfigAttack::BlkSize(b) => blk_size = b,
            ConfigAttack::BlkSizeFlapping => blk_size = 512 << (self.config_reads % 5),
            _ => {}
        }
        let mut out = [0u8; wire::CFG_LEN];
        out[wire::CFG_CAPACITY..wire::CFG_CAPACITY + 8].copy_from_slice(&capacity.to_le_bytes());
        out[wire::CFG_BLK_SIZE..wire::CFG_BLK_SIZE + 4].copy_from_slice(&blk_size.to_le_bytes());
        out
    }

    /// Processes every new available entry of queue 0.
    fn process(&mut self, queue: u16) -> Result<(), ModelError> {
        let mut q = match self.queue {
            Some(q) if queue == 0 => q,
            _ => return Err(ModelError::QueueNotReady(queue)),
        };
        if !self.status.contains(DeviceStatus::DRIVER_OK) {
            return Err(ModelError::QueueNotReady(queue));
        }
        let size = u64::from(q.size);
        loop {
            let avail_idx = self.mem.read_u16(q.driver + wire::AVAIL_IDX)?;
            // Pairs with the driver's release store of avail.idx: ring entries and descriptors are visible.
            fence(Ordering::Acquire);
            let pending = avail_idx.wrapping_sub(q.last_avail);
            if pending == 0 {
                break;
            }
            if pending > q.size {
                return Err(ModelError::AvailOverrun(pending));
            }
            let slot = u64::from(q.last_avail) % size;
            let head = self.mem.read_u16(q.driver + wire::AVAIL_RING + 2 * slot)?;
            self.serve(&mut q, head)?;
            q.last_avail = q.last_avail.wrapping_add(1);
            self.queue = Some(q);
        }
        if self.negotiated(feature::RING_EVENT_IDX) {
            // avail_event: "notify me once avail.idx moves past what I have consumed".
            self.mem.write_u16(q.device + wire::USED_RING + 8 * size, q.last_avail)?;
            fence(Ordering::SeqCst);
        }
        self.queue = Some(q);
        Ok(())
    }

    fn walk_chain(&self, q: &Queue, head: u16) -> Result<Vec<Descriptor>, ModelError> {
        let read_desc = |table: u64, i: u16| -> Result<Descriptor, ModelError> {
            let mut raw = [0u8; 16];
            self.mem.read(table + 16 * u64::from(i), &mut raw)?;
            Ok(Descriptor::parse(&raw))
        };
        if head >= q.size {
            return Err(ModelError::BadDescriptorIndex(head.into()));
        }
        let first = read_desc(q.desc, head)?;
        if first.flags & wire::DESC_F_INDIRECT != 0 {
            if !self.negotiated(feature::RING_INDIRECT_DESC) {
                return Err(ModelError::BadIndirect("INDIRECT used but not negotiated"));
            }
            if first.flags & wire::DESC_F_NEXT != 0 {
                return Err(ModelError::BadIndirect("INDIRECT together with NEXT"));
            }
            if first.len == 0 || !first.len.is_multiple_of(16) || first.len / 16 > u32::from(q.size) {
                return Err(ModelError::BadIndirect("table length"));
            }
            let n = (first.len / 16) as u16;
            self.mem.check(first.addr, first.len as usize)?;
            let mut out = Vec::new();
            let mut i = 0u16;
            loop {
                if out.len() >= usize::from(n) {
                    return Err(ModelError::ChainTooLong);
                }
                let d = read_desc(first.addr, i)?;
                if d.flags & wire::DESC_F_INDIRECT != 0 {
                    return Err(ModelError::BadIndirect("nested INDIRECT"));
                }
                out.push(d);
                if d.flags & wire::DESC_F_NEXT == 0 {
                    return Ok(out);
                }
                if d.next >= n {
                    return Err(ModelError::BadIndirect("next outside the table"));
                }
                i = d.next;
            }
        }
        let mut out = vec![first];
        let mut d = first;
        while d.flags & wire::DESC_F_NEXT != 0 {
            if d.next >= q.size {
                return Err(ModelError::BadDescriptorIndex(d.next.into()));
            }
            if out.len() >= usize::from(q.size) {
                return Err(ModelError::ChainTooLong);
            }
            d = read_desc(q.desc, d.next)?;
            if d.flags & wire::DESC_F_INDIRECT != 0 {
                return Err(ModelError::BadIndirect("INDIRECT inside a direct chain"));
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Runs one request and completes it (as the adversary decides).
    fn serve(&mut self, q: &mut Queue, head: u16) -> Result<(), ModelError> {
        let chain = self.walk_chain(q, head)?;
        let mut readable = Vec::new();
        let mut writable = Vec::new();
        for d in &chain {
            self.mem.check(d.addr, d.len as usize)?;
            if d.flags & wire::DESC_F_WRITE != 0 {
                writable.push((d.addr, d.len as usize));
            } else if !writable.is_empty() {
                return Err(ModelError::ReadableAfterWritable);
            } else {
                readable.push((d.addr, d.len as usize));
            }
        }
        let in_len: usize = readable.iter().map(|r| r.1).sum();
        let out_len: usize = writable.iter().map(|w| w.1).sum();
        if in_len < 16 {
            return Err(ModelError::BadRequest("header shorter than 16 bytes"));
        }
        if out_len < 1 {
            return Err(ModelError::BadRequest("no writable status byte"));
        }
        let mut input = vec![0u8; in_len];
        let mut at = 0;
        for &(addr, len) in &readable {
            self.mem.read(addr, &mut input[at..at + len])?;
            at += len;
        }
        let kind = u32::from_le_bytes([input[0], input[1], input[2], input[3]]);
        let sector = u64::from_le_bytes([
            input[8], input[9], input[10], input[11], input[12], input[13], input[14], input[15],
        ]);
        let payload = &input[16..];
        let data_out_len = out_len - 1;
        let (status, reply, data_len) = match kind {
            wire::T_IN => {
                if !payload.is_empty() {
                    return Err(ModelError::BadRequest("IN request carries device-readable data"));
                }
                let mut buf = vec![0u8; data_out_len];
                let status = self.backing_io(sector, |b, lba| b.read_blocks(lba, &mut buf), data_out_len);
                (status, if status == wire::S_OK { buf } else { Vec::new() }, data_out_len)
            }
            wire::T_OUT => {
                if data_out_len != 0 {
                    return Err(ModelError::BadRequest("OUT request has more than the status byte writable"));
                }
                let status = if self.negotiated(feature::BLK_RO) || self.opts.read_only {
                    wire::S_IOERR
                } else {
                    let data = payload.to_vec();
                    self.backing_io(
                        sector,
                        |b, lba| b.write_blocks(lba, &data, WriteMode::Cached),
                        data.len(),
                    )
                };
                (status, Vec::new(), payload.len())
            }
            wire::T_FLUSH => {
                let status = if !self.negotiated(feature::BLK_FLUSH) {
                    wire::S_UNSUPP
                } else if let Some(forced) = self.opts.flush_status {
                    forced
                } else {
                    match self.backing.flush() {
                        Ok(()) => wire::S_OK,
                        Err(_) => wire::S_IOERR,
                    }
                };
                (status, Vec::new(), 0)
            }
            wire::T_GET_ID => {
                let n = data_out_len.min(20);
                (wire::S_OK, self.opts.device_id[..n].to_vec(), data_out_len)
            }
            _ => (wire::S_UNSUPP, Vec::new(), payload.len()),
        };
        // Scatter the reply over the writable buffers, the status byte (last writable byte) excluded.
        let mut done = 0;
        for &(addr, len) in &writable {
            if done >= reply.len() {
                break;
            }
            let n = len.min(reply.len() - done);
            self.mem.write(addr, &reply[done..done + n])?;
            done += n;
        }
        let (status_addr, status_len) = writable[writable.len() - 1];
        let status_gpa = status_addr + status_len as u64 - 1;
        let used_len = (reply.len() + 1) as u32;

        let can_stall = matches!(kind, wire::T_IN | wire::T_OUT);
        let scripted = (!self.opts.scripted.is_empty()).then(|| self.opts.scripted.remove(0));
        let action = match (scripted, self.opts.adversary.as_mut()) {
            (Some(a), _) => a,
            (None, Some(adv)) => Action::draw(&mut adv.choices, adv.hostility, can_stall && adv.allow_stall),
            (None, None) => Action::Honest,
        };
        self.events.push(Event { kind, sector, data_len, honest_status: status, action });

        let written_status = match action {
            Action::GarbageStatus(b) => Some(b),
            Action::SpuriousIoErr => Some(wire::S_IOERR),
            Action::SpuriousUnsupp => Some(wire::S_UNSUPP),
            Action::NoStatus => None,
            _ => Some(status),
        };
        if let Some(s) = written_status {
            self.mem.write(status_gpa, &[s])?;
        }
        let id = u32::from(head);
        let (entries, advance): (Vec<(u32, u32)>, u16) = match action {
            Action::NoCompletion => (vec![], 0),
            Action::WrongId(x) => {
                let x = if x as u16 == head { x ^ 0x8000 } else { x };
                (vec![(x, used_len)], 1)
            }
            Action::AliasedId(k) => (vec![(id.wrapping_add(k), used_len)], 1),
            Action::WrongLen(l) => (vec![(id, l)], 1),
            Action::Duplicate => (vec![(id, used_len), (id, used_len)], 2),
            Action::IdxJump(n) => (vec![(id, used_len)], n),
            _ => (vec![(id, used_len)], 1),
        };
        let size = u64::from(q.size);
        for (i, (eid, elen)) in entries.iter().enumerate() {
            let slot = u64::from(q.used_idx.wrapping_add(i as u16)) % size;
            let mut raw = [0u8; 8];
            raw[..4].copy_from_slice(&eid.to_le_bytes());
            raw[4..].copy_from_slice(&elen.to_le_bytes());
            self.mem.write(q.device + wire::USED_RING + 8 * slot, &raw)?;
        }
        if advance != 0 {
            let old = q.used_idx;
            q.used_idx = q.used_idx.wrapping_add(advance);
            // The element (and the data and status it describes) must be visible before the new index.
            fence(Ordering::Release);
            self.mem.write_u16(q.device + wire::USED_IDX, q.used_idx)?;
            fence(Ordering::SeqCst);
            self.interrupt |= if self.negotiated(feature::RING_EVENT_IDX) {
                let used_event = self.mem.read_u16(q.driver + wire::AVAIL_RING + 2 * size)?;
                q.used_idx.wrapping_sub(used_event).wrapping_sub(1) < q.used_idx.wrapping_sub(old)
            } else {
                true
            };
        }
        Ok(())
    }

    /// Runs a sector-addressed transfer against the backing store and returns the virtio status.
    fn backing_io(
        &mut self,
        sector: u64,
        op: impl FnOnce(&mut dyn BlockDevice, u64) -> Result<(), svsm_block::BlockError>,
        len: usize,
    ) -> u8 {
        let bs = u64::from(self.backing.info().block_size);
        let Some(offset) = sector.checked_mul(wire::SECTOR) else { return wire::S_IOERR };
        if !offset.is_multiple_of(bs) || !(len as u64).is_multiple_of(bs) {
            return wire::S_IOERR;
        }
        let Some(end) = offset.checked_add(len as u64) else { return wire::S_IOERR };
        if end > self.backing.info().capacity_bytes() {
            return wire::S_IOERR;
        }
        match op(&mut *self.backing, offset / bs) {
            Ok(()) => wire::S_OK,
            Err(_) => wire::S_IOERR,
        }
    }
}

impl Transport for VirtioBlkModel {
    fn device_type(&self) -> DeviceType {
        DeviceType::Block
    }

    fn read_device_features(&mut self) -> u64 {
        self.state.borrow().device_features()
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        let mut s = self.state.borrow_mut();
        let offered = s.device_features();
        if driver_features & !offered != 0 {
            s.errors.push(ModelError::BadRequest("driver accepted a feature the device did not offer"));
        }
        s.driver_features = driver_features & offered;
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        let s = self.state.borrow();
        match (queue, s.config_attack) {
            (0, ConfigAttack::TinyQueue) => 8,
            (0, _) => u32::from(s.opts.max_queue_size),
            _ => 0,
        }
    }

    fn notify(&mut self, queue: u16) {
        let mut s = self.state.borrow_mut();
        if s.broken {
            return;
        }
        if let Err(e) = s.process(queue) {
            s.errors.push(e);
            s.broken = true;
            s.status |= DeviceStatus::DEVICE_NEEDS_RESET;
        }
    }

    fn get_status(&self) -> DeviceStatus {
        self.state.borrow().status
    }

    fn set_status(&mut self, status: DeviceStatus) {
        let mut s = self.state.borrow_mut();
        if status.is_empty() {
            // Writing 0 resets the device.
            s.queue = None;
            s.driver_features = 0;
            s.broken = false;
            s.interrupt = false;
        }
        s.status = status;
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let mut s = self.state.borrow_mut();
        if queue != 0 || size == 0 || !size.is_power_of_two() || size > u32::from(s.opts.max_queue_size) {
            s.errors.push(ModelError::BadQueueSize(size));
            return;
        }
        let size16 = size as u16;
        let n = u64::from(size);
        let layout = [(descriptors, 16 * n, 16), (driver_area, 6 + 2 * n, 2), (device_area, 6 + 8 * n, 4)];
        for (gpa, len, align) in layout {
            if let Err(e) = s.mem.check(gpa, len as usize) {
                s.errors.push(e);
                return;
            }
            if !gpa.is_multiple_of(align) {
                s.errors.push(ModelError::Misaligned { gpa, align });
                return;
            }
        }
        s.queue = Some(Queue {
            size: size16,
            desc: descriptors,
            driver: driver_area,
            device: device_area,
            last_avail: 0,
            used_idx: 0,
        });
    }

    fn queue_unset(&mut self, _queue: u16) {
        self.state.borrow_mut().queue = None;
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        let s = self.state.borrow();
        queue == 0 && (s.queue.is_some() || s.config_attack == ConfigAttack::QueueInUse)
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let mut s = self.state.borrow_mut();
        if std::mem::take(&mut s.interrupt) {
            InterruptStatus::QUEUE_INTERRUPT
        } else {
            InterruptStatus::empty()
        }
    }

    fn read_config_generation(&self) -> u32 {
        let mut s = self.state.borrow_mut();
        match s.config_attack {
            ConfigAttack::GenerationForever => s.generation = s.generation.wrapping_add(1),
            ConfigAttack::GenerationChurn(n) if s.generation < u32::from(n) => s.generation += 1,
            _ => {}
        }
        s.generation
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, VirtioError> {
        let bytes = self.state.borrow_mut().config_bytes();
        let end = offset.checked_add(size_of::<T>()).ok_or(VirtioError::ConfigSpaceTooSmall)?;
        let field = bytes.get(offset..end).ok_or(VirtioError::ConfigSpaceTooSmall)?;
        T::read_from_bytes(field).map_err(|_| VirtioError::ConfigSpaceTooSmall)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        _offset: usize,
        _value: T,
    ) -> Result<(), VirtioError> {
        // virtio-blk has no driver-writable config field the model implements (writeback is not offered).
        Err(VirtioError::Unsupported)
    }
}
