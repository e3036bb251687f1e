//! Device-tree parsing against hand-built DTBs, well-formed and hostile.

use std::collections::HashMap;

use svsm_discovery::fdt::{
    FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP, Fdt, MAX_DEPTH,
};
use svsm_discovery::{DeviceSource, DiscoveryError, VirtioMmioDevice, fuzzing, virtio_mmio_from_fdt};

/// A tiny DTB writer: the test's own implementation of the format, so the parser is checked against an
/// independent encoder.
#[derive(Default)]
struct Builder {
    structure: Vec<u8>,
    strings: Vec<u8>,
    names: HashMap<String, u32>,
    version: u32,
    last_comp: u32,
}

impl Builder {
    fn new() -> Self {
        Self { version: 17, last_comp: 16, ..Default::default() }
    }
    fn word(&mut self, w: u32) -> &mut Self {
        self.structure.extend_from_slice(&w.to_be_bytes());
        self
    }
    fn pad(&mut self) {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }
    fn begin(&mut self, name: &str) -> &mut Self {
        self.word(FDT_BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
        self
    }
    fn end(&mut self) -> &mut Self {
        self.word(FDT_END_NODE)
    }
    fn nop(&mut self) -> &mut Self {
        self.word(FDT_NOP)
    }
    fn nameoff(&mut self, name: &str) -> u32 {
        if let Some(&off) = self.names.get(name) {
            return off;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.names.insert(name.to_string(), off);
        off
    }
    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let off = self.nameoff(name);
        self.word(FDT_PROP).word(value.len() as u32).word(off);
        self.structure.extend_from_slice(value);
        self.pad();
        self
    }
    fn prop_u32(&mut self, name: &str, v: u32) -> &mut Self {
        self.prop(name, &v.to_be_bytes())
    }
    fn prop_cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &bytes)
    }
    fn prop_str(&mut self, name: &str, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.prop(name, &v)
    }
    /// Structure without an END token appended.
    fn finish_raw(&self) -> Vec<u8> {
        let rsv_off = 40u32;
        let struct_off = rsv_off + 16;
        let strings_off = struct_off + self.structure.len() as u32;
        let total = strings_off + self.strings.len() as u32;
        let header = [
            FDT_MAGIC,
            total,
            struct_off,
            strings_off,
            rsv_off,
            self.version,
            self.last_comp,
            0,
            self.strings.len() as u32,
            self.structure.len() as u32,
        ];
        let mut out: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        out.extend_from_slice(&[0u8; 16]); // empty memory reservation map
        out.extend_from_slice(&self.structure);
        out.extend_from_slice(&self.strings);
        out
    }
    fn finish(&mut self) -> Vec<u8> {
        self.word(FDT_END);
        self.finish_raw()
    }
}

fn virtio_node(b: &mut Builder, addr: u64, plane: Option<u32>) {
    b.begin(&format!("virtio_mmio@{addr:x}"))
        .prop_str("compatible", "virtio,mmio")
        .prop_cells("reg", &[(addr >> 32) as u32, addr as u32, 0, 0x200]);
    if let Some(p) = plane {
        b.prop_u32("plane", p);
    }
    b.end();
}

/// The shape QEMU gives an SVSM: root with 2/2 cells, virtio nodes under it, other nodes around them.
fn qemu_like() -> Vec<u8> {
    let mut b = Builder::new();
    b.begin("")
        .prop_u32("#address-cells", 2)
        .prop_u32("#size-cells", 2)
        .prop_str("compatible", "linux,dummy-virt");
    b.begin("chosen").prop_str("bootargs", "console=ttyS0").end();
    virtio_node(&mut b, 0xfeb0_0000, Some(0));
    b.nop();
    virtio_node(&mut b, 0x1_0000_0000, None);
    // Listed second in compatible: still a virtio-mmio transport.
    b.begin("virtio_mmio@feb00400")
        .prop("compatible", b"vendor,thing\0virtio,mmio\0")
        .prop_cells("reg", &[0, 0xfeb0_0400, 0, 0x200])
        .prop_u32("plane", 2)
        .end();
    // Disabled and foreign nodes are not reported.
    b.begin("virtio_mmio@feb00600")
        .prop_str("compatible", "virtio,mmio")
        .prop_str("status", "disabled")
        .prop_cells("reg", &[0, 0xfeb0_0600, 0, 0x200])
        .end();
    b.begin("serial@3f8").prop_str("compatible", "ns16550a").prop_cells("reg", &[0, 0x3f8, 0, 8]).end();
    b.end();
    b.finish()
}

fn named(name: &str, address: u64, size: Option<u64>, plane: Option<u32>) -> VirtioMmioDevice {
    VirtioMmioDevice { address, size, plane, name: Some(name.to_string()) }
}

#[test]
fn finds_every_enabled_virtio_mmio_node_with_reg_and_plane() {
    let blob = qemu_like();
    let devices = virtio_mmio_from_fdt(&blob).unwrap();
    assert_eq!(
        devices,
        vec![
            named("virtio_mmio@feb00000", 0xfeb0_0000, Some(0x200), Some(0)),
            named("virtio_mmio@100000000", 0x1_0000_0000, Some(0x200), None),
            named("virtio_mmio@feb00400", 0xfeb0_0400, Some(0x200), Some(2)),
        ]
    );
    // A blob inside a larger (page-sized) parameter area parses the same.
    let mut padded = blob.clone();
    padded.resize(4096, 0xAA);
    assert_eq!(virtio_mmio_from_fdt(&padded).unwrap(), devices);
    assert_eq!(Fdt::parse(&blob).unwrap().version(), 17);
}

#[test]
fn an_explicit_okay_status_keeps_the_node() {
    let mut b = Builder::new();
    b.begin("").prop_u32("#address-cells", 1).prop_u32("#size-cells", 1);
    b.begin("v")
        .prop_str("compatible", "virtio,mmio")
        .prop_str("status", "okay")
        .prop_cells("reg", &[0x1000, 0x200]);
    b.end().end();
    assert_eq!(virtio_mmio_from_fdt(&b.finish()).unwrap(), vec![named("v", 0x1000, Some(0x200), None)]);
}

#[test]
fn reg_uses_the_parents_cells_with_spec_defaults() {
    // Root states nothing: children use 2 address cells and 1 size cell.
    let mut b = Builder::new();
    b.begin("");
    b.begin("v").prop_str("compatible", "virtio,mmio").prop_cells("reg", &[0x1, 0x2000, 0x400]).end();
    // A bus with 1 address cell and no size cells for its children.
    b.begin("soc").prop_u32("#address-cells", 1).prop_u32("#size-cells", 0);
    b.begin("w").prop_str("compatible", "virtio,mmio").prop_cells("reg", &[0xd000_0000]).end();
    b.end();
    // 1/2 cells; two entries, only the first is the device window.
    b.begin("bus2").prop_u32("#address-cells", 1).prop_u32("#size-cells", 2);
    b.begin("x")
        .prop_str("compatible", "virtio,mmio")
        .prop_cells("reg", &[0xc000_0000, 0, 0x1000, 0xe000_0000, 0, 8]);
    b.end().end();
    b.end();
    assert_eq!(
        virtio_mmio_from_fdt(&b.finish()).unwrap(),
        vec![
            named("v", 0x1_0000_2000, Some(0x400), None),
            named("w", 0xd000_0000, None, None),
            named("x", 0xc000_0000, Some(0x1000), None),
        ]
    );
}

fn one_virtio_under(cells: Option<(u32, u32)>, props: &dyn Fn(&mut Builder)) -> Vec<u8> {
    let mut b = Builder::new();
    b.begin("");
    if let Some((a, s)) = cells {
        b.prop_u32("#address-cells", a).prop_u32("#size-cells", s);
    }
    b.begin("virtio_mmio@0").prop_str("compatible", "virtio,mmio");
    props(&mut b);
    b.end().end();
    b.finish()
}

#[test]
fn malformed_virtio_properties_give_precise_errors() {
    let blob = one_virtio_under(Some((2, 2)), &|b| {
        b.prop_cells("reg", &[0, 0x1000, 0, 0x200, 0]);
    });
    assert!(matches!(
        virtio_mmio_from_fdt(&blob),
        Err(DiscoveryError::FdtBadProperty {
            property: "reg",
            len: 20,
            detail: "not a whole number of (address, size) entries",
            ..
        })
    ));
    let blob = one_virtio_under(Some((2, 2)), &|b| {
        b.prop("reg", &[]);
    });
    assert!(matches!(
        virtio_mmio_from_fdt(&blob),
        Err(DiscoveryError::FdtBadProperty { property: "reg", len: 0, .. })
    ));
    let blob = one_virtio_under(None, &|_| {});
    assert!(matches!(virtio_mmio_from_fdt(&blob), Err(DiscoveryError::FdtMissingReg { .. })));
    for (a, s) in [(3, 2), (0, 1), (2, 3)] {
        let blob = one_virtio_under(Some((a, s)), &|b| {
            b.prop_cells("reg", &[0; 8]);
        });
        assert!(
            matches!(
                virtio_mmio_from_fdt(&blob),
                Err(DiscoveryError::FdtUnsupportedCells { address_cells, size_cells, .. })
                    if address_cells == a && size_cells == s
            ),
            "cells {a}/{s}"
        );
    }
    let blob = one_virtio_under(None, &|b| {
        b.prop_cells("reg", &[0, 0x1000, 0x200]).prop("plane", &[0, 1]);
    });
    assert!(matches!(
        virtio_mmio_from_fdt(&blob),
        Err(DiscoveryError::FdtBadProperty { property: "plane", len: 2, .. })
    ));
    let blob = one_virtio_under(None, &|b| {
        b.prop_cells("reg", &[u32::MAX, u32::MAX - 0xff, 0x200]);
    });
    assert_eq!(
        virtio_mmio_from_fdt(&blob),
        Err(DiscoveryError::WindowOverflow { address: u64::MAX - 0xff, size: 0x200 })
    );
    // A compatible list without its terminating NUL is malformed, not silently truncated.
    let mut b = Builder::new();
    b.begin("").begin("v").prop("compatible", b"virtio,mmio").end().end();
    assert!(matches!(
        virtio_mmio_from_fdt(&b.finish()),
        Err(DiscoveryError::FdtBadProperty { property: "compatible", len: 11, .. })
    ));
    let mut b = Builder::new();
    b.begin("").prop("#size-cells", &[0, 0, 0, 1, 0]).end();
    assert!(matches!(
        virtio_mmio_from_fdt(&b.finish()),
        Err(DiscoveryError::FdtBadProperty { property: "#size-cells", .. })
    ));
}

fn set_word(blob: &mut [u8], index: usize, value: u32) {
    blob[index * 4..index * 4 + 4].copy_from_slice(&value.to_be_bytes());
}

#[test]
fn hostile_headers_are_refused() {
    let good = qemu_like();
    assert_eq!(virtio_mmio_from_fdt(&good[..39]), Err(DiscoveryError::FdtTruncatedHeader { len: 39 }));
    let mut b = good.clone();
    set_word(&mut b, 0, 0xedfe0dd0);
    assert_eq!(virtio_mmio_from_fdt(&b), Err(DiscoveryError::FdtBadMagic { magic: 0xedfe0dd0 }));
    // totalsize larger than the blob, or smaller than the header.
    assert!(matches!(
        virtio_mmio_from_fdt(&good[..good.len() - 1]),
        Err(DiscoveryError::FdtTotalSize { .. })
    ));
    let mut b = good.clone();
    set_word(&mut b, 1, 39);
    assert!(matches!(virtio_mmio_from_fdt(&b), Err(DiscoveryError::FdtTotalSize { totalsize: 39, .. })));
    for (version, last_comp) in [(16, 16), (17, 18), (0, 0)] {
        let mut b = good.clone();
        set_word(&mut b, 5, version);
        set_word(&mut b, 6, last_comp);
        assert_eq!(
            virtio_mmio_from_fdt(&b),
            Err(DiscoveryError::FdtUnsupportedVersion { version, last_comp_version: last_comp })
        );
    }
    // A later version that is still compatible with 17 is read.
    let mut b = good.clone();
    set_word(&mut b, 5, 18);
    assert!(virtio_mmio_from_fdt(&b).is_ok());
    // Blocks outside the blob, overlapping the header, misaligned, or with sizes that overflow.
    for (word, value, block) in [
        (2, 0xFFFF_FFF0, "structure"),
        (2, 8, "structure"),
        (2, 58, "structure"),
        (9, u32::MAX, "structure"),
        (3, u32::MAX, "strings"),
        (8, u32::MAX, "strings"),
        (3, 0, "strings"),
    ] {
        let mut b = good.clone();
        set_word(&mut b, word, value);
        assert!(
            matches!(virtio_mmio_from_fdt(&b), Err(DiscoveryError::FdtBlockOutOfBounds { block: bl, .. }) if bl == block),
            "header word {word} = {value:#x}: {:?}",
            virtio_mmio_from_fdt(&b)
        );
    }
}

#[test]
fn hostile_structures_are_refused() {
    // Unknown token.
    let mut b = Builder::new();
    b.begin("").word(0x7).end();
    assert!(matches!(
        virtio_mmio_from_fdt(&b.finish()),
        Err(DiscoveryError::FdtUnknownToken { token: 7, .. })
    ));
    // A node name running off the end of the structure block.
    let mut b = Builder::new();
    b.word(FDT_BEGIN_NODE);
    b.structure.extend_from_slice(b"abcd");
    assert!(matches!(
        virtio_mmio_from_fdt(&b.finish_raw()),
        Err(DiscoveryError::FdtUnterminatedName { offset: 0 })
    ));
    // A property value longer than the block, and a huge length that would overflow.
    for len in [100u32, u32::MAX, u32::MAX - 7] {
        let mut b = Builder::new();
        let off = b.nameoff("x");
        b.begin("").word(FDT_PROP).word(len).word(off).end();
        assert!(
            matches!(virtio_mmio_from_fdt(&b.finish()), Err(DiscoveryError::FdtTruncatedStructure { .. })),
            "len {len}"
        );
    }
    // Name offsets past the strings block, and a name without its NUL.
    let mut b = Builder::new();
    b.begin("").word(FDT_PROP).word(0).word(1000).end();
    assert!(matches!(
        virtio_mmio_from_fdt(&b.finish()),
        Err(DiscoveryError::FdtStringOffset { nameoff: 1000, .. })
    ));
    let mut b = Builder::new();
    b.begin("").prop("reg", &[]).end();
    let mut blob = b.finish();
    let last = blob.len() - 1;
    blob[last] = b'x'; // "reg\0" -> "regx"
    assert!(matches!(virtio_mmio_from_fdt(&blob), Err(DiscoveryError::FdtUnterminatedString { nameoff: 0 })));
    // Structure errors.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            {
                let mut b = Builder::new();
                b.end();
                b.finish()
            },
            "END_NODE without an open node",
        ),
        (
            {
                let mut b = Builder::new();
                b.begin("").end().end();
                b.finish()
            },
            "END_NODE without an open node",
        ),
        (
            {
                let mut b = Builder::new();
                b.prop_u32("x", 1);
                b.finish()
            },
            "property outside any node",
        ),
        (
            {
                let mut b = Builder::new();
                b.begin("").begin("a").end().prop_u32("x", 1).end();
                b.finish()
            },
            "property after a subnode",
        ),
        (
            {
                let mut b = Builder::new();
                b.begin("").end().begin("").end();
                b.finish()
            },
            "a second root node",
        ),
        (
            {
                let mut b = Builder::new();
                b.begin("").begin("a").end();
                b.finish()
            },
            "END before the root node was closed",
        ),
        (
            {
                let mut b = Builder::new();
                b.finish()
            },
            "END before the root node was closed",
        ),
    ];
    for (blob, detail) in cases {
        match virtio_mmio_from_fdt(&blob) {
            Err(DiscoveryError::FdtStructure { detail: d, .. }) => assert_eq!(d, detail),
            other => panic!("expected {detail:?}, got {other:?}"),
        }
    }
    // No END at all: the walk runs off the block and says so.
    let mut b = Builder::new();
    b.begin("").end();
    assert!(matches!(
        virtio_mmio_from_fdt(&b.finish_raw()),
        Err(DiscoveryError::FdtTruncatedStructure { .. })
    ));
}

#[test]
fn nesting_is_limited() {
    let nest = |depth: usize| {
        let mut b = Builder::new();
        for _ in 0..depth {
            b.begin("n");
        }
        for _ in 0..depth {
            b.end();
        }
        b.finish()
    };
    assert_eq!(virtio_mmio_from_fdt(&nest(MAX_DEPTH)).unwrap(), vec![]);
    assert_eq!(
        virtio_mmio_from_fdt(&nest(MAX_DEPTH + 1)),
        Err(DiscoveryError::FdtTooDeep { max: MAX_DEPTH })
    );
    assert_eq!(virtio_mmio_from_fdt(&nest(100_000)), Err(DiscoveryError::FdtTooDeep { max: MAX_DEPTH }));
}

#[test]
fn the_token_stream_is_exposed_for_other_users() {
    let blob = qemu_like();
    let fdt = Fdt::parse(&blob).unwrap();
    let tokens: Vec<_> = fdt.tokens().collect::<Result<_, _>>().unwrap();
    assert!(matches!(tokens.first(), Some(svsm_discovery::fdt::Token::BeginNode { offset: 0, name: b"" })));
    assert!(matches!(tokens.last(), Some(svsm_discovery::fdt::Token::End { .. })));
    assert_eq!(fdt.virtio_mmio_devices().unwrap().len(), 3);
}

fn fdt_strings_len(blob: &[u8]) -> usize {
    u32::from_be_bytes(blob[32..36].try_into().unwrap()) as usize
}

/// Mutations of a valid tree plus random blobs through the fuzz entry point (what the fuzzer runs).
#[test]
fn fuzz_entry_point_survives_mutated_and_random_trees() {
    let good = qemu_like();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut parsed_ok = 0;
    for i in 0..6000 {
        let mut blob = good.clone();
        match i % 4 {
            0 => {
                let at = (next() as usize) % blob.len();
                blob[at] ^= 1 << (next() % 8);
            }
            1 => {
                for _ in 0..(next() % 8) {
                    let at = (next() as usize) % blob.len();
                    blob[at] = next() as u8;
                }
            }
            2 => blob.truncate((next() as usize) % blob.len()),
            _ => {
                let len = (next() % 200) as usize;
                blob = (0..len).map(|_| next() as u8).collect();
            }
        }
        if virtio_mmio_from_fdt(&blob).is_ok() {
            parsed_ok += 1;
        }
        fuzzing::fdt(&blob);
    }
    // Single-bit flips in padding or unused fields leave the tree valid: the campaign must reach deep paths.
    assert!(parsed_ok > 100, "only {parsed_ok} mutated trees parsed");
    // The wrapping mode of the fuzz entry point reproduces a real tree from its two blocks.
    let tokens_len = good.len() - 56 - fdt_strings_len(&good);
    let structure = &good[56..56 + tokens_len];
    let strings = &good[56 + tokens_len..];
    let wrapped = fuzzing::wrap_fdt(structure, strings);
    assert_eq!(wrapped, good);
    let mut input = vec![2u8, (tokens_len / 4).min(255) as u8];
    input.extend_from_slice(structure);
    input.extend_from_slice(strings);
    fuzzing::fdt(&input);
}
