//! Entry points for the fuzz targets (crates/svsm-vtpm/fuzz) and the unit tests that run them in CI.
//!
//! Each function feeds arbitrary bytes to one untrusted-input parser the way a server does (frame after
//! frame until the bytes run out or a frame is rejected) and checks the invariants a server relies on: a
//! complete frame never claims more bytes than it was given, an incomplete one asks for more than it has, and
//! TPM commands handed on are within the size limits and agree with their own headers.

use crate::mssim::{self, CommandRequest, Parse};
use crate::{MAX_TPM_MESSAGE, manufacture, marshal, svsm_page, swtpm, swtpm_state};

fn check_progress<T>(r: &Parse<T>, available: usize) -> Option<usize> {
    match r {
        Parse::Incomplete { needed } => {
            assert!(*needed > available, "incomplete frame asks for {needed} with {available} present");
            None
        }
        Parse::Complete { consumed, .. } => {
            assert!(*consumed > 0 && *consumed <= available, "consumed {consumed} of {available}");
            Some(*consumed)
        }
    }
}

fn check_command(command: &[u8]) {
    assert!(command.len() >= marshal::HEADER_SIZE && command.len() <= MAX_TPM_MESSAGE);
    let h = marshal::CommandHeader::parse(command).expect("frame parser let a bad TPM header through");
    assert_eq!(h.size as usize, command.len());
}

/// mssim command port: parse frames until the input is used up or rejected.
pub fn mssim_command_stream(data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let Ok(r) = mssim::parse_command(rest) else { return };
        if let Parse::Complete { frame: CommandRequest::SendCommand { command, locality }, .. } = &r {
            assert!(*locality <= 4);
            check_command(command);
        }
        let Some(n) = check_progress(&r, rest.len()) else { return };
        rest = &rest[n..];
    }
}

/// mssim platform port.
pub fn mssim_platform_stream(data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let Ok(r) = mssim::parse_platform(rest) else { return };
        let Some(n) = check_progress(&r, rest.len()) else { return };
        rest = &rest[n..];
    }
}

/// swtpm control channel followed by the data channel: the first byte splits the input between them.
pub fn swtpm_streams(data: &[u8]) {
    let Some((&split, body)) = data.split_first() else { return };
    let cut = usize::from(split).min(body.len());
    let (ctrl, data_chan) = body.split_at(cut);
    let mut rest = ctrl;
    while !rest.is_empty() {
        let Ok(r) = swtpm::parse_ctrl(rest) else { break };
        if let Parse::Complete {
            frame: swtpm::CtrlRequest::SetLocality(l) | swtpm::CtrlRequest::ResetEstablished(l),
            ..
        } = &r
        {
            assert!(*l <= 4);
        }
        if let Parse::Complete { frame: swtpm::CtrlRequest::SetStateBlob { data, .. }, consumed } = &r {
            assert!(data.len() <= swtpm::MAX_STATE_BLOB && *consumed == 16 + data.len());
        }
        let Some(n) = check_progress(&r, rest.len()) else { break };
        rest = &rest[n..];
    }
    let mut rest = data_chan;
    while !rest.is_empty() {
        let Ok(r) = swtpm::parse_data(rest) else { return };
        if let Parse::Complete { frame, .. } = &r {
            check_command(frame);
        }
        let Some(n) = check_progress(&r, rest.len()) else { return };
        rest = &rest[n..];
    }
}

/// The SVSM vTPM page: parse a request, and write a response of the fuzzed length back.
pub fn svsm_page(data: &[u8]) {
    let mut page = [0u8; svsm_page::PAGE_SIZE];
    let n = data.len().min(svsm_page::PAGE_SIZE);
    page[..n].copy_from_slice(&data[..n]);
    if let Ok(req) = svsm_page::parse_request(&page) {
        assert_eq!(req.locality, 0);
        assert!(req.command.len() <= svsm_page::MAX_COMMAND);
        assert!(req.command.len() >= marshal::HEADER_SIZE);
        let resp = req.command.to_vec();
        svsm_page::write_response(&mut page, &resp).expect("a command-sized response always fits");
    }
    // Also parse the raw (possibly short) input: truncated pages must be errors, never panics.
    let _ = svsm_page::parse_request(data);
}

/// TPM response and structure readers used on engine output and on stored records.
pub fn tpm_structures(data: &[u8]) {
    let _ = marshal::Response::parse(data, 1);
    let _ = marshal::CreatedPrimary::parse(data);
    // The verifier reads attested keys with this parser and the EK check re-marshals them: a parsed area
    // must give back exactly its bytes, and its Name must be computable for the supported nameAlgs.
    if let Ok(area) = marshal::PublicArea::parse(data) {
        assert_eq!(area.marshal().ok().as_deref(), Some(data), "public area did not round-trip");
        let _ = marshal::object_name(area.name_alg, data);
        let _ = manufacture::EkKind::of_created(data);
    }
    let _ = marshal::NvPublic::parse(data);
    if let Ok(rec) = manufacture::ManufactureRecord::decode(data) {
        assert_eq!(rec.encode().ok().as_deref(), Some(data), "record did not round-trip");
    }
}

/// Sealed state blobs (CMD_SET_STATEBLOB input from the host): the first byte picks the blob type. Opening
/// arbitrary bytes never panics and never succeeds (the fuzzer cannot forge a tag); sealing the same bytes and
/// opening them gives them back unchanged.
#[cfg(feature = "stateblob")]
pub fn stateblob(data: &[u8]) {
    use crate::stateblob::StateBlobKey;
    use svsm_store::{SeededRandom, VolumeId};
    let Some((&sel, rest)) = data.split_first() else { return };
    let kind = u32::from(sel % 4);
    let key = StateBlobKey::new(zeroize::Zeroizing::new([0x42; 32]), VolumeId([7; 16]));
    assert!(key.open(kind, rest, None).is_err());
    assert!(key.open(kind, rest, Some(key.volume())).is_err());
    if kind == 0 {
        return;
    }
    let (state, record) = rest.split_at(rest.len() / 2);
    let sealed = key.seal(kind, state, Some(record), &mut SeededRandom::new(u64::from(sel))).unwrap();
    let opened = key.open(kind, &sealed, Some(key.volume()));
    if kind == crate::swtpm::blob_type::PERMANENT && state.is_empty() {
        assert!(opened.is_err(), "an empty permanent state must not open");
        return;
    }
    let opened = opened.unwrap();
    if kind == crate::swtpm::blob_type::PERMANENT {
        assert_eq!(&opened.state[..], state);
        assert_eq!(opened.manufacture.as_deref().unwrap_or(&[]), record);
    } else {
        assert_eq!(&opened.state[..], rest.split_at(rest.len() / 2).0);
    }
}

/// swtpm state files (`tpm2-00.permall` from a directory being imported): the input as a file, decoded with
/// no key and with fixed 128- and 256-bit keys; and the input as a libtpms blob, which must survive encoding
/// as a plain and an encrypted file and decoding again unchanged.
pub fn swtpm_state_file(data: &[u8]) {
    use swtpm_state::{BlobKind, StateKey};
    let k128 = StateKey::from_bytes(&[0x42; 16]).expect("16-byte key");
    let k256 = StateKey::from_bytes(&[0x42; 32]).expect("32-byte key");
    if swtpm_state::parse(data).is_ok() {
        let total = u32::from_be_bytes([data[6], data[7], data[8], data[9]]);
        assert_eq!(
            total as usize,
            data.len(),
            "parser accepted a file whose length disagrees with its header"
        );
    }
    for kind in [BlobKind::Permanent, BlobKind::Volatile] {
        for key in [None, Some(&k128), Some(&k256)] {
            if let Ok((blob, _)) = swtpm_state::decode(data, kind, key) {
                assert!(swtpm_state::check_libtpms_blob(&blob, kind).is_ok());
            }
        }
    }
    // The input as the libtpms blob itself (forced to carry the permall magic).
    let mut blob = alloc::vec![0x00, 0x03, 0xab, 0x36, 0x47, 0x23, 0x00, 0x03];
    blob.extend_from_slice(&data[..data.len().min(8192)]);
    let plain = swtpm_state::encode_plain(&blob, BlobKind::Permanent).expect("encode plain");
    let (back, encrypted) = swtpm_state::decode(&plain, BlobKind::Permanent, None).expect("decode plain");
    assert!(!encrypted && back[..] == blob[..], "plain state did not round-trip");
    for key in [&k128, &k256] {
        let ivec = alloc::vec![data.first().copied().unwrap_or(0); usize::from(key.bits() / 8)];
        let file = swtpm_state::encode_encrypted(&blob, BlobKind::Permanent, key, &ivec).expect("encode");
        let (back, encrypted) = swtpm_state::decode(&file, BlobKind::Permanent, Some(key)).expect("decode");
        assert!(encrypted && back[..] == blob[..], "encrypted state did not round-trip");
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    /// xorshift64*: deterministic, seeded inputs without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            let n = (self.next() as usize) % max;
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn mssim_send(locality: u8, cmd: &[u8]) -> Vec<u8> {
        let mut f = 8u32.to_be_bytes().to_vec();
        f.push(locality);
        f.extend_from_slice(&(cmd.len() as u32).to_be_bytes());
        f.extend_from_slice(cmd);
        f
    }

    fn seeds() -> Vec<Vec<u8>> {
        let get_random = marshal::cmd::get_random(8).unwrap();
        let nv_write = marshal::cmd::nv_write(marshal::rh::OWNER, 0x0150_0016, &[7; 64], 0).unwrap();
        let mut v = vec![
            Vec::new(),
            mssim_send(0, &get_random),
            [mssim_send(0, &get_random), mssim_send(3, &nv_write), 20u32.to_be_bytes().to_vec()].concat(),
            [1u32.to_be_bytes(), 11u32.to_be_bytes(), 17u32.to_be_bytes()].concat(),
            [15u32.to_be_bytes(), 1u32.to_be_bytes()].concat(),
            get_random.clone(),
            [vec![8u8], 5u32.to_be_bytes().to_vec(), vec![0], get_random.clone()].concat(),
            [vec![12u8], 0x11u32.to_be_bytes().to_vec(), 0u32.to_be_bytes().to_vec(), nv_write.clone()]
                .concat(),
        ];
        let mut page = 8u32.to_le_bytes().to_vec();
        page.push(0);
        page.extend_from_slice(&(nv_write.len() as u32).to_le_bytes());
        page.extend_from_slice(&nv_write);
        v.push(page);
        v.push(manufacture::ManufactureRecord::manufactured(Vec::new()).encode().unwrap());
        let blob = [&[0x00, 0x03, 0xab, 0x36, 0x47, 0x23, 0, 3][..], &[9; 40]].concat();
        v.push(swtpm_state::encode_plain(&blob, swtpm_state::BlobKind::Permanent).unwrap());
        let key = swtpm_state::StateKey::from_bytes(&[0x42; 32]).unwrap();
        v.push(
            swtpm_state::encode_encrypted(&blob, swtpm_state::BlobKind::Permanent, &key, &[1; 32]).unwrap(),
        );
        v
    }

    fn all(data: &[u8]) {
        mssim_command_stream(data);
        mssim_platform_stream(data);
        swtpm_streams(data);
        svsm_page(data);
        tpm_structures(data);
        #[cfg(feature = "stateblob")]
        stateblob(data);
        swtpm_state_file(data);
    }

    #[test]
    fn fuzz_entry_points_survive_seeded_random_and_mutated_inputs() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let seeds = seeds();
        for s in &seeds {
            all(s);
            // every prefix: truncated frames
            for cut in 0..s.len() {
                all(&s[..cut]);
            }
        }
        for _ in 0..4000 {
            let mut s = seeds[(rng.next() as usize) % seeds.len()].clone();
            for _ in 0..(rng.next() % 6) {
                if s.is_empty() {
                    break;
                }
                let i = (rng.next() as usize) % s.len();
                s[i] = rng.next() as u8;
            }
            all(&s);
            all(&rng.bytes(300));
        }
    }
}
