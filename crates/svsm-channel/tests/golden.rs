//! The bytes on the wire, pinned: the key-release frames as they were before the fold (so the proxy and
//! every deployed SVSM keep talking), and the ledger's frames.

use svsm_channel::{FrameError, decode, encode, encode_header, split};

fn any(k: u8) -> Result<u8, FrameError> {
    Ok(k)
}

#[test]
fn key_release_reply_bytes_are_unchanged() {
    // Kind 0x81 (AuthReply), payload: HTTP status 200 LE then `{}`.
    let bytes = encode(0x81, &[200, 0, b'{', b'}']);
    assert_eq!(bytes, [1, 0x81, 0, 0, 4, 0, 0, 0, 200, 0, b'{', b'}']);
    assert_eq!(decode(&bytes, 256 * 1024, any).unwrap(), (0x81, &[200, 0, b'{', b'}'][..]));
}

#[test]
fn key_release_resource_request_bytes_are_unchanged() {
    let bytes = encode(0x03, b"default/key/vtpm");
    let mut want = vec![1, 0x03, 0, 0, 16, 0, 0, 0];
    want.extend_from_slice(b"default/key/vtpm");
    assert_eq!(bytes, want);
    assert_eq!(encode_header(0x7F, 0x0102_0304), [1, 0x7F, 0, 0, 4, 3, 2, 1]);
}

#[test]
fn ledger_frames_use_the_same_header() {
    assert_eq!(&encode(0x10, &[0xAA; 3])[..], &[1, 0x10, 0, 0, 3, 0, 0, 0, 0xAA, 0xAA, 0xAA]);
    assert_eq!(&encode(0x90, &[])[..], &[1, 0x90, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn each_malformation_is_refused_in_the_documented_order() {
    let good = encode(0x03, b"abc");
    assert_eq!(decode(&good[..5], 16, any), Err(FrameError::Truncated { need: 8, have: 5 }));
    assert_eq!(decode(&good[..10], 16, any), Err(FrameError::Truncated { need: 11, have: 10 }));
    let mut long = good.clone();
    long.push(0);
    assert_eq!(decode(&long, 16, any), Err(FrameError::Trailing(1)));
    // Version before kind before reserved before length.
    let all_bad = [9, 0x55, 1, 0, 0xff, 0xff, 0xff, 0xff];
    let strict = |k: u8| if k == 0x03 { Ok(k) } else { Err(FrameError::Kind(k)) };
    assert_eq!(decode(&all_bad, 16, strict), Err(FrameError::Version(9)));
    assert_eq!(decode(&[1, 0x55, 1, 0, 0xff, 0xff, 0xff, 0xff], 16, strict), Err(FrameError::Kind(0x55)));
    assert_eq!(decode(&[1, 0x03, 1, 0, 0xff, 0xff, 0xff, 0xff], 16, strict), Err(FrameError::Reserved));
    assert_eq!(
        decode(&[1, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff], 16, strict),
        Err(FrameError::Oversize { len: 0xffff_ffff, max: 16 })
    );
    assert_eq!(decode(&encode(0x03, &[0; 16]), 16, strict).unwrap().1.len(), 16);
    assert!(decode(&encode(0x03, &[0; 17]), 16, strict).is_err());
}

#[test]
fn split_waits_for_whole_frames_and_refuses_bad_headers_early() {
    let mut stream = encode(0x10, b"one");
    stream.extend_from_slice(&encode(0x90, b"second"));
    for cut in 0..11 {
        assert_eq!(split(&stream[..cut], 64, any).unwrap(), None, "cut at {cut}");
    }
    let (kind, payload, used) = split(&stream, 64, any).unwrap().unwrap();
    assert_eq!((kind, payload, used), (0x10, &b"one"[..], 11));
    assert_eq!(split(&stream[used..], 64, any).unwrap(), Some((0x90, &b"second"[..], 14)));
    // An oversize announcement is refused from the header alone, before its payload arrives.
    assert!(split(&[1, 0x10, 0, 0, 0, 0, 1, 0], 64, any).is_err());
}

#[cfg(feature = "std")]
#[test]
fn the_stream_reader_and_writer_round_trip_and_tell_close_from_truncation() {
    use svsm_channel::io::{ReadError, read_frame, write_frame};
    let mut wire = Vec::new();
    write_frame(&mut wire, 0x81, b"xyz").unwrap();
    assert_eq!(wire, encode(0x81, b"xyz"));
    let mut r = &wire[..];
    assert_eq!(read_frame(&mut r, 64, any).unwrap(), (0x81, b"xyz".to_vec()));
    assert!(matches!(read_frame(&mut r, 64, any), Err(ReadError::Closed)));
    let mut cut = &wire[..9];
    assert!(matches!(
        read_frame(&mut cut, 64, any),
        Err(ReadError::Frame(FrameError::Truncated { need: 11, have: 9 }))
    ));
    let mut big = &encode(0x81, &[0; 65])[..];
    assert!(matches!(read_frame(&mut big, 64, any), Err(ReadError::Frame(FrameError::Oversize { .. }))));
}
