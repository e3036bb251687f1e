//! KBS replies at every stage of the client: arbitrary status and body never panic, and a 200 Challenge
//! leads to an Attestation only with a well-formed nonce.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_kbs::frame::{Frame, Kind};
use svsm_kbs::{ClientConfig, EvidenceProvider, KbsClient, Step, Tee};

struct NoEvidence;
impl EvidenceProvider for NoEvidence {
    fn tee(&self) -> Tee {
        Tee::Snp
    }
    fn evidence(&mut self, _: &[u8; 64]) -> Result<serde_json::Value, String> {
        Ok(serde_json::Value::Null)
    }
}

/// A fixed-seed RNG (the fuzzer needs determinism; keys do not matter here).
struct Counter(u64);
impl rand_core::RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        for b in d {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(d);
        Ok(())
    }
}
impl rand_core::CryptoRng for Counter {}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut client = KbsClient::new(ClientConfig::new("default/svsm/key"));
    let _ = client.start(Tee::Snp, &mut Counter(1));
    let good_challenge = br#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","extra-params":""}"#;
    // Walk to the stage `sel` picks with valid replies, then feed the fuzzed one.
    let stages = [Kind::AuthReply, Kind::AttestReply, Kind::ResourceReply];
    let target = (sel % 3) as usize;
    for (i, kind) in stages.iter().enumerate().take(target) {
        let body: &[u8] = if i == 0 { good_challenge } else { br#"{"token":"x"}"# };
        match client.on_frame(Frame::reply(*kind, 200, body).unwrap(), &mut NoEvidence) {
            Ok(Step::Send(_)) => {}
            _ => return,
        }
    }
    let status = if sel & 0x80 != 0 { 200 } else { u16::from(sel) * 3 };
    if let Ok(frame) = Frame::reply(stages[target], status, rest) {
        match client.on_frame(frame, &mut NoEvidence) {
            Ok(Step::Send(f)) => assert!(target < 2 && f.payload.len() <= svsm_kbs::frame::MAX_PAYLOAD),
            Ok(Step::Released(_)) => panic!("released a secret from a JWE to a key the fuzzer never saw"),
            Err(_) => {}
        }
    }
});
