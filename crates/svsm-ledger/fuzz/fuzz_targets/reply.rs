//! The client's reply parser on hostile bytes: never a panic, and nothing but the genuine reply is accepted.
//! Input: byte 0 picks raw bytes or a genuine reply with the rest XORed in (so the fuzzer reaches the checks
//! behind the MAC only through genuine replies, as an attacker would).
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_ledger::wire::{Outcome, open_reply, seal_reply};
use svsm_ledger::{LedgerKey, Request, RequestKind, VmId, frame};
use svsm_store::{LedgerRecord, VolumeId};

fuzz_target!(|data: &[u8]| {
    let key = LedgerKey::from_bytes([7; 32]);
    let request = Request {
        vm: VmId([1; 16]),
        volume: VolumeId([2; 16]),
        nonce: [3; 32],
        kind: RequestKind::CompareAndSet {
            expected: Some(LedgerRecord { generation: 4, superblock_hash: [4; 32] }),
            new: LedgerRecord { generation: 5, superblock_hash: [5; 32] },
        },
    };
    let rb = request.seal(&key);
    let _ = frame::split(data);
    let Some((&mode, rest)) = data.split_first() else { return };
    let genuine = seal_reply(Some(&key), &rb, Outcome::Applied, 1234);
    let bytes: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut b = genuine.to_vec();
        for (i, x) in rest.iter().enumerate() {
            if let Some(slot) = b.get_mut(i) {
                *slot ^= x;
            } else {
                b.push(*x);
            }
        }
        b
    };
    if let Ok(reply) = open_reply(&bytes, &key, &request, &rb) {
        assert_eq!(bytes, genuine.to_vec(), "a reply other than the genuine one was accepted");
        assert_eq!(reply.outcome, Outcome::Applied);
    }
});
