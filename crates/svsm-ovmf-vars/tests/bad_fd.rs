//! Damaged `.fd` images: each defect is refused with the error that names it (and its offset), never a
//! panic and never a partial list of variables.

use svsm_ovmf_vars::Error;
use svsm_ovmf_vars::fd::{self, FdLayout};
use svsm_ovmf_vars::testing::{header_name, variable_headers};

const MS_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

fn ms() -> Vec<u8> {
    std::fs::read(MS_4M).expect("Debian's ovmf package (Makefile APT_PACKAGES)")
}

fn err(image: &[u8]) -> Error {
    fd::parse(image).expect_err("damaged image accepted")
}

/// Offset of the live (state 0x3f) header of `name` in `image`.
fn live_header(image: &[u8], name: &str) -> usize {
    let geometry = fd::parse(image).unwrap().geometry;
    variable_headers(image, &geometry)
        .into_iter()
        .find(|(offset, h)| h.state == 0x3f && header_name(image, *offset, h).as_deref() == Some(name))
        .map(|(offset, _)| offset)
        .unwrap_or_else(|| panic!("{name} not in image"))
}

fn put_u32(image: &mut [u8], offset: usize, value: u32) {
    image[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn truncated_files_name_what_is_cut() {
    let image = ms();
    // Cut inside the FV header (after the GUID, so the volume is still found).
    assert!(matches!(err(&image[..40]), Error::Truncated { what: "firmware volume header", offset: 0, .. }));
    // Cut inside the volume: FvLength promises 0x84000 bytes.
    match err(&image[..0x30000]) {
        Error::Truncated {
            what: "firmware volume (FvLength)", needed: 0x84000, available: 0x30000, ..
        } => {}
        other => panic!("{other:?}"),
    }
    // Too short to hold even the GUID: no volume.
    assert_eq!(err(&image[..20]), Error::NoVolume { len: 20 });
    assert_eq!(err(&[]), Error::NoVolume { len: 0 });
}

#[test]
fn bad_fv_checksum_is_refused() {
    let mut image = ms();
    image[44] ^= 0x01; // an attribute bit: only the checksum can tell
    match err(&image) {
        Error::BadFvChecksum { offset: 0, sum } => assert_ne!(sum, 0),
        other => panic!("{other:?}"),
    }
    assert!(err(&image).to_string().contains("checksum"));
}

#[test]
fn bad_fv_signature_revision_and_block_map_are_refused() {
    let mut image = ms();
    image[40] = b'X';
    assert!(matches!(err(&image), Error::BadFvSignature { offset: 0, .. }));

    let mut image = ms();
    image[55] = 1; // high byte of the u16 at 54: the sum drops by 0x100, made up in the checksum's high byte
    image[51] = image[51].wrapping_add(1);
    assert_eq!(err(&image), Error::BadFvRevision { offset: 0, found: 1 });

    // Block map of 0x83 blocks (checksum fixed up) no longer covers FvLength.
    let mut image = ms();
    image[56] = 0x83; // low byte of the u16 at 56, made up in the checksum's low byte
    image[50] = image[50].wrapping_add(1);
    assert_eq!(err(&image), Error::BlockMapMismatch { offset: 0, blocks: 0x83000, fv_length: 0x84000 });
}

#[test]
fn bad_store_guid_format_state_and_size_are_refused() {
    let mut image = ms();
    image[0x48] ^= 0xff;
    assert!(matches!(err(&image), Error::BadStoreGuid { offset: 0x48, .. }));
    assert!(err(&image).to_string().contains("aaf32c78-947b-439a-a180-2e144ec37792"));

    // The pre-Secure-Boot plain store GUID gets its own message.
    let mut image = ms();
    image[0x48..0x58].copy_from_slice(&uguid::guid!("ddcf3616-3275-4164-98b6-fe85707ffe7d").to_bytes());
    assert!(matches!(err(&image), Error::PlainVariableStore { offset: 0x48, .. }));

    let mut image = ms();
    image[0x48 + 20] = 0x00;
    assert_eq!(err(&image), Error::BadStoreFormat { offset: 0x48, found: 0 });

    let mut image = ms();
    image[0x48 + 21] = 0xff;
    assert_eq!(err(&image), Error::BadStoreState { offset: 0x48, found: 0xff });

    let mut image = ms();
    put_u32(&mut image, 0x48 + 16, 0x90000);
    assert!(matches!(err(&image), Error::BadStoreSize { offset: 0x48, size: 0x90000, .. }));
}

#[test]
fn overlong_name_size_runs_past_the_store() {
    let mut image = ms();
    let pk = live_header(&image, "PK");
    put_u32(&mut image, pk + 36, 0x4000_0000);
    match err(&image) {
        Error::VariableOverrun { offset, name_size: 0x4000_0000, end: 0x40000, .. } => assert_eq!(offset, pk),
        other => panic!("{other:?}"),
    }
    // Sizes that overflow 32 bits when added are caught the same way.
    put_u32(&mut image, pk + 36, u32::MAX);
    put_u32(&mut image, pk + 40, u32::MAX);
    assert!(matches!(err(&image), Error::VariableOverrun { .. }));
}

#[test]
fn header_past_the_end_of_the_store_is_refused() {
    // A start id 20 bytes before the store end: the 60-byte header cannot fit.
    let mut image = fd::write(&fd::parse(&ms()).unwrap().variables, &FdLayout::Ovmf4M).unwrap();
    let used_end = fd::parse(&image).unwrap().geometry.used_end;
    let at = 0x40000 - 20;
    image[at..at + 2].copy_from_slice(&0x55aau16.to_le_bytes());
    // Fill the gap before it with one variable whose data reaches `at`, so the walk arrives there.
    let filler = filler_variable(at - used_end);
    image[used_end..at].copy_from_slice(&filler);
    assert_eq!(err(&image), Error::HeaderPastEnd { offset: at, end: 0x40000 });
}

/// A live variable named "F" of exactly `len` bytes (header + name + data), `len` a multiple of 4.
fn filler_variable(len: usize) -> Vec<u8> {
    assert!(len >= 64 && len.is_multiple_of(4));
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&0x55aau16.to_le_bytes());
    out.push(0x3f);
    out.push(0);
    out.extend_from_slice(&7u32.to_le_bytes());
    out.extend_from_slice(&[0; 8 + 16 + 4]);
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&((len - 64) as u32).to_le_bytes());
    out.extend_from_slice(&[0x11; 16]);
    out.extend_from_slice(&[b'F', 0, 0, 0]);
    out.resize(len, 0xab);
    out
}

#[test]
fn garbage_start_id_is_refused_not_taken_for_free_space() {
    let mut image = ms();
    let used_end = fd::parse(&image).unwrap().geometry.used_end;
    image[used_end] = 0x12;
    assert_eq!(err(&image), Error::BadStartId { offset: used_end, found: 0xff12 });
}

#[test]
fn damaged_names_of_live_variables_are_refused() {
    // Odd name size.
    let mut image = ms();
    let pk = live_header(&image, "PK");
    put_u32(&mut image, pk + 36, 5);
    assert_eq!(err(&image), Error::BadNameSize { offset: pk, name_size: 5 });

    // Name without its NUL ("PK" -> "PKX" in place of the terminator).
    let mut image = ms();
    image[pk + 60 + 4] = b'X';
    assert_eq!(err(&image), Error::BadNameTerminator { offset: pk });

    // An unpaired surrogate is not UTF-16.
    let mut image = ms();
    image[pk + 60..pk + 62].copy_from_slice(&0xd800u16.to_le_bytes());
    assert_eq!(err(&image), Error::BadName { offset: pk });
}

#[test]
fn reserved_and_volatile_attributes_are_refused() {
    let mut image = ms();
    let pk = live_header(&image, "PK");
    put_u32(&mut image, pk + 4, 0x127);
    assert!(matches!(err(&image), Error::ReservedAttributes { attr: 0x127, .. }));
    put_u32(&mut image, pk + 4, 0x26);
    assert!(matches!(err(&image), Error::VolatileVariable { attr: 0x26, .. }));
}

#[test]
fn qcow2_image_gets_a_conversion_hint() {
    let mut image = b"QFI\xfb".to_vec();
    image.resize(4096, 0);
    assert_eq!(err(&image), Error::Qcow2Image);
    assert!(err(&image).to_string().contains("qemu-img convert"));
}
