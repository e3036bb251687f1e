//! Channel framing: whole-buffer decode and the stream reader agree, and never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_kbs::frame::Frame;
use svsm_kbs::stream::read_frame;

fuzz_target!(|data: &[u8]| {
    let whole = Frame::decode(data);
    let mut cursor = std::io::Cursor::new(data);
    let streamed = read_frame(&mut cursor);
    if let Ok(f) = &whole {
        assert_eq!(f.encode(), data);
        assert_eq!(streamed.as_ref().ok(), Some(f));
        let _ = f.status_and_body();
    }
});
