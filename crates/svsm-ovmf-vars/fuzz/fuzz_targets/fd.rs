//! The `.fd` importer on hostile images: never a panic, and whatever it accepts writes back and re-reads as
//! the same variables. Input: byte 0 picks the raw bytes as the image, the rest as the variable area of a
//! valid small image (so the fuzzer works on variable headers behind a good volume and store header), or the
//! rest XORed over a valid small image holding a few variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_ovmf_vars::fd::{self, FdLayout};
use svsm_ovmf_vars::testing::small_template;
use svsm_ovmf_vars::{EfiTime, EfiVar, EfiVarAttr, EfiVarId};

fn seeded(template: &[u8]) -> Vec<u8> {
    let guid = uguid::guid!("8be4df61-93ca-11d2-aa0d-00e098032b8c");
    let auth = EfiVarAttr::from(0x27);
    let vars = [
        EfiVar::new_from_slice(EfiVarId::new("Boot0000".into(), guid), EfiVarAttr::new_nv_bs_rt(), b"\x01\x00\x00\x00"),
        EfiVar::new_with_vec_full(EfiVarId::new("PK".into(), guid), auth, vec![0x5a; 40], Some(EfiTime::new(2025, 3, 10, 2, 53, 39))),
        EfiVar::new_from_slice(EfiVarId::new("Lang".into(), guid), EfiVarAttr::new_nv_bs_rt(), b"eng"),
    ];
    fd::write(&vars, &FdLayout::Template(template.to_vec())).expect("seed image")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let template = small_template();
    let image = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut image = template.clone();
            let area = &mut image[0x64..0x2000];
            let n = rest.len().min(area.len());
            area[..n].copy_from_slice(&rest[..n]);
            image
        }
        _ => {
            let mut image = seeded(&template);
            for (i, x) in rest.iter().enumerate() {
                let at = i % image.len();
                image[at] ^= x;
            }
            image
        }
    };
    let Ok(parsed) = fd::parse(&image) else { return };
    let again = fd::write(&parsed.variables, &FdLayout::Template(image.clone())).expect("accepted variables must write back");
    assert_eq!(fd::parse(&again).expect("written image must parse").variables, parsed.variables);
});
