//! The on-disk layout of format v2, byte for byte. `docs/store-format.md` is the normative text; every
//! structure here is pinned by compile-time size and offset asserts so the code cannot drift from it.
//!
//! All integers are little-endian. Structures are `zerocopy` views over byte arrays (alignment 1), so parsing
//! untrusted bytes is a bounds-checked copy that cannot panic or read out of bounds.

use core::mem::{offset_of, size_of};

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Every store block is 4 KiB, whatever the device's sector size (which must divide it).
pub const BLOCK_SIZE: usize = 4096;
/// `log2(BLOCK_SIZE)`, as recorded in the superblock.
pub const BLOCK_SIZE_LOG2: u8 = 12;
/// Superblock magic.
pub const MAGIC: [u8; 8] = *b"SVSMSTOR";
/// Format major version this code writes and reads. Any change that an older reader would misinterpret bumps it.
/// v2 added the superblock's ledger anchor (`anchor_generation`, `anchor_hash`), which boot-epoch open needs to
/// refuse forks; v1 volumes are refused with `UnsupportedVersion`.
pub const FORMAT_MAJOR: u16 = 2;
/// Format minor version this code writes (additive changes only).
pub const FORMAT_MINOR: u16 = 0;
/// Superblock slots: block 0 (even generations) and block 1 (odd generations).
pub const SUPERBLOCK_SLOTS: u64 = 2;
/// First block that may hold tree nodes or data.
pub const FIRST_DATA_BLOCK: u64 = SUPERBLOCK_SLOTS;
/// Smallest volume: two superblocks plus room for a table leaf and a few data blocks.
pub const MIN_VOLUME_BLOCKS: u64 = 8;
/// Largest volume v2 accepts (64 GiB). Bounds the in-RAM free map at open to 2 MiB.
pub const MAX_VOLUME_BLOCKS: u64 = 1 << 24;

/// AEAD algorithm id 1: AES-256-GCM with 96-bit random nonces and 128-bit tags.
pub const AEAD_AES256_GCM: u16 = 1;
/// KDF/MAC algorithm id 1: HKDF-SHA256 for derivation, HMAC-SHA256 for the superblock MAC.
pub const KDF_HKDF_SHA256: u16 = 1;

/// Incompatible feature bits this implementation understands (none in v2.0).
pub const INCOMPAT_SUPPORTED: u64 = 0;
/// Read-only-compatible feature bits this implementation understands (none in v2.0).
pub const RO_COMPAT_SUPPORTED: u64 = 0;

/// Number of seals under one key epoch after which commits are refused (NIST SP 800-38D random-nonce bound,
/// with a factor 4 margin). A 64 MiB volume rewritten fully every second would take ~3 years to get there.
pub const NONCE_BUDGET: u64 = 1 << 30;

/// Ledger modes, recorded in the superblock at format time.
pub const LEDGER_MODE_STRICT: u8 = 1;
/// See [`LEDGER_MODE_STRICT`].
pub const LEDGER_MODE_BOOT_EPOCH: u8 = 2;
/// Bounded-window mode (`window_seconds` holds T). See [`LEDGER_MODE_STRICT`].
pub const LEDGER_MODE_WINDOW: u8 = 3;
/// Longest window accepted (one week): a longer one is boot-epoch mode in all but name.
pub const MAX_WINDOW_SECONDS: u32 = 7 * 24 * 3600;

/// Node types, bound into every block's AAD so a block of one kind can never be read as another.
pub mod node_type {
    /// Object-table interior node: `(first_id, child pointer)` pairs.
    pub const TABLE_INTERIOR: u8 = 1;
    /// Object-table leaf: object entries sorted by id.
    pub const TABLE_LEAF: u8 = 2;
    /// Object index node: pointers to the next level (data blocks at level 1).
    pub const INDEX: u8 = 3;
    /// Object data: 4096 bytes of object content (the last block zero-padded).
    pub const DATA: u8 = 4;
}

/// Version of the node layouts inside sealed blocks.
pub const NODE_VERSION: u8 = 1;

/// A pointer to a sealed child block. The parent holds the child's nonce and tag, so the tree of tags is a
/// Merkle tree: verifying the root MAC and then each tag on the way down authenticates everything reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Pointer {
    /// Block index on the volume (0 = null pointer: empty object or empty table).
    pub addr: U64,
    /// Generation of the commit that wrote the child. Open verifies data blocks born in the newest commit.
    pub birth: U64,
    /// AEAD nonce the child was sealed with.
    pub nonce: [u8; 12],
    /// AEAD tag of the child.
    pub tag: [u8; 16],
    /// Reserved, must be zero in v2.
    pub flags: U32,
}
const _: () = assert!(size_of::<Pointer>() == 48);
const _: () = assert!(offset_of!(Pointer, birth) == 8);
const _: () = assert!(offset_of!(Pointer, nonce) == 16);
const _: () = assert!(offset_of!(Pointer, tag) == 28);
const _: () = assert!(offset_of!(Pointer, flags) == 44);

impl Pointer {
    /// Whether this is the null pointer.
    pub fn is_null(&self) -> bool {
        *self == Pointer::default()
    }
}

/// Header at the start of every sealed metadata node (table and index nodes; data blocks have none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NodeHeader {
    /// One of [`node_type`].
    pub node_type: u8,
    /// [`NODE_VERSION`].
    pub node_version: u8,
    /// Height above the leaves/data (table leaf 0; index node whose children are data blocks: 1).
    pub level: u8,
    /// Reserved, zero.
    pub reserved: u8,
    /// Used slots in this node.
    pub count: U32,
    /// Owning object for index nodes, 0 for table nodes.
    pub object_id: U64,
}
const _: () = assert!(size_of::<NodeHeader>() == 16);
const _: () = assert!(offset_of!(NodeHeader, count) == 4);
const _: () = assert!(offset_of!(NodeHeader, object_id) == 8);

/// One object in the object table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ObjectEntry {
    /// Object id (never 0).
    pub id: U64,
    /// Size in bytes.
    pub size: U64,
    /// Index levels above the data blocks (0: `root` points at the only data block, or is null when empty).
    pub depth: u8,
    /// Reserved, zero.
    pub flags: u8,
    /// Reserved, zero.
    pub reserved: [u8; 6],
    /// Root of the object's block tree.
    pub root: Pointer,
}
const _: () = assert!(size_of::<ObjectEntry>() == 72);
const _: () = assert!(offset_of!(ObjectEntry, depth) == 16);
const _: () = assert!(offset_of!(ObjectEntry, root) == 24);

/// One child of an object-table interior node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TableChild {
    /// Smallest object id in the child's subtree.
    pub first_id: U64,
    /// The child.
    pub ptr: Pointer,
}
const _: () = assert!(size_of::<TableChild>() == 56);

/// Pointers per index node: (4096 - 16) / 48.
pub const INDEX_FANOUT: usize = (BLOCK_SIZE - size_of::<NodeHeader>()) / size_of::<Pointer>();
const _: () = assert!(INDEX_FANOUT == 85);
/// Entries per table leaf.
pub const LEAF_CAPACITY: usize = (BLOCK_SIZE - size_of::<NodeHeader>()) / size_of::<ObjectEntry>();
const _: () = assert!(LEAF_CAPACITY == 56);
/// Children per table interior node.
pub const INTERIOR_CAPACITY: usize = (BLOCK_SIZE - size_of::<NodeHeader>()) / size_of::<TableChild>();
const _: () = assert!(INTERIOR_CAPACITY == 72);
/// Deepest object tree v2 reads (85^4 data blocks is far beyond [`MAX_VOLUME_BLOCKS`]).
pub const MAX_OBJECT_DEPTH: u8 = 4;
/// Deepest object table v2 reads (56 * 72^3 objects).
pub const MAX_TABLE_DEPTH: u8 = 3;

/// The superblock: a plaintext header (readable without the key, so tools can say what a device is),
/// then per-generation fields, all covered by an HMAC-SHA256 under the superblock key.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Superblock {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_MAJOR`].
    pub format_major: U16,
    /// [`FORMAT_MINOR`].
    pub format_minor: U16,
    /// Size of this structure ([`SUPERBLOCK_LEN`]); lets a later minor version append fields.
    pub header_len: U32,
    /// Features an implementation must understand to read or write the volume.
    pub incompat: U64,
    /// Features an implementation must understand to write; it may still open read-only.
    pub ro_compat: U64,
    /// Features an implementation may ignore.
    pub compat: U64,
    /// Volume id: random at format, the ledger's key, bound into every AAD and the KDF salt.
    pub volume_id: [u8; 16],
    /// Random KDF salt chosen at format.
    pub kdf_salt: [u8; 32],
    /// [`AEAD_AES256_GCM`].
    pub aead_alg: U16,
    /// [`KDF_HKDF_SHA256`].
    pub kdf_alg: U16,
    /// [`BLOCK_SIZE_LOG2`].
    pub block_size_log2: u8,
    /// [`LEDGER_MODE_STRICT`], [`LEDGER_MODE_BOOT_EPOCH`] or [`LEDGER_MODE_WINDOW`].
    pub ledger_mode: u8,
    /// Reserved, zero.
    pub reserved0: [u8; 2],
    /// Volume size in 4 KiB blocks (the device may be larger, never smaller).
    pub num_blocks: U64,
    /// First 16 bytes of HMAC(K_check, "svsm-store key check"): tells a wrong key from a corrupt superblock.
    pub key_check: [u8; 16],
    /// Commit generation (format writes 1). Even generations live in slot 0, odd ones in slot 1.
    pub generation: U64,
    /// Root of the object table (null when the volume holds no objects).
    pub table_root: Pointer,
    /// Interior levels of the object table above its leaves.
    pub table_depth: u8,
    /// Reserved, zero.
    pub reserved1: [u8; 7],
    /// Objects in the table.
    pub object_count: U64,
    /// Blocks sealed under the current key epoch over the volume's life (nonce budget).
    pub seal_count: U64,
    /// Key epoch of every block key (always 0 in v2; rotation is a future incompat feature).
    pub key_epoch: U32,
    /// Window length T in seconds with [`LEDGER_MODE_WINDOW`] (1..=[`MAX_WINDOW_SECONDS`]); zero in every
    /// other mode. Fixed for the volume's life, like the mode.
    pub window_seconds: U32,
    /// SHA-256 of the previous generation's superblock (zero for generation 1).
    pub prev_hash: [u8; 32],
    /// Generation of the ledger record the writing session was opened from (its *anchor*; zero for the
    /// generation `format` writes). Boot-epoch open accepts a generation newer than the ledger's only if its
    /// anchor is exactly the ledger's record, so a fork from an earlier run cannot overtake a later one.
    pub anchor_generation: U64,
    /// Superblock hash of the anchor record (zero with `anchor_generation` 0).
    pub anchor_hash: [u8; 32],
    /// HMAC-SHA256 under K_sb over every byte before this field.
    pub mac: [u8; 32],
}

/// Bytes of a superblock block that carry the structure; the rest of the 4 KiB block must be zero.
pub const SUPERBLOCK_LEN: usize = size_of::<Superblock>();
const _: () = assert!(SUPERBLOCK_LEN == 312);
const _: () = assert!(offset_of!(Superblock, format_major) == 8);
const _: () = assert!(offset_of!(Superblock, header_len) == 12);
const _: () = assert!(offset_of!(Superblock, incompat) == 16);
const _: () = assert!(offset_of!(Superblock, volume_id) == 40);
const _: () = assert!(offset_of!(Superblock, kdf_salt) == 56);
const _: () = assert!(offset_of!(Superblock, aead_alg) == 88);
const _: () = assert!(offset_of!(Superblock, block_size_log2) == 92);
const _: () = assert!(offset_of!(Superblock, ledger_mode) == 93);
const _: () = assert!(offset_of!(Superblock, num_blocks) == 96);
const _: () = assert!(offset_of!(Superblock, key_check) == 104);
const _: () = assert!(offset_of!(Superblock, generation) == 120);
const _: () = assert!(offset_of!(Superblock, table_root) == 128);
const _: () = assert!(offset_of!(Superblock, table_depth) == 176);
const _: () = assert!(offset_of!(Superblock, object_count) == 184);
const _: () = assert!(offset_of!(Superblock, seal_count) == 192);
const _: () = assert!(offset_of!(Superblock, key_epoch) == 200);
const _: () = assert!(offset_of!(Superblock, window_seconds) == 204);
const _: () = assert!(offset_of!(Superblock, prev_hash) == 208);
const _: () = assert!(offset_of!(Superblock, anchor_generation) == 240);
const _: () = assert!(offset_of!(Superblock, anchor_hash) == 248);
const _: () = assert!(offset_of!(Superblock, mac) == 280);
/// Bytes covered by the superblock MAC.
pub const SUPERBLOCK_MAC_OFFSET: usize = offset_of!(Superblock, mac);

/// Additional authenticated data of every sealed block. Binding the volume, the block's own address, its type,
/// level, owner and position means a valid block can be neither moved, nor spliced into another volume, nor
/// read as a different kind of node or as a different part of an object.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlockAad {
    /// [`Superblock::volume_id`].
    pub volume_id: [u8; 16],
    /// [`FORMAT_MAJOR`].
    pub format_major: U16,
    /// One of [`node_type`].
    pub node_type: u8,
    /// Level within its tree.
    pub level: u8,
    /// Key epoch the block was sealed under.
    pub key_epoch: U32,
    /// The block's own address.
    pub addr: U64,
    /// Owning object (0 for table nodes).
    pub object_id: U64,
    /// Position: for data blocks the block index within the object, for nodes the index of the first data
    /// block (or first table slot) they cover.
    pub position: U64,
}
const _: () = assert!(size_of::<BlockAad>() == 48);
const _: () = assert!(offset_of!(BlockAad, addr) == 24);
