//! The whole decision on hostile SetVariable data and a hostile stored PK: the AUTH_2 descriptor, the PKCS#7
//! SignedData, the signer chain and the new value's signature lists.
//!
//! Input: selector byte (bits 0-2: variable, bit 3: a PK is stored, bit 4: APPEND_WRITE), u16 LE length of
//! the stored PK value, the stored PK value, then the SetVariable data.
#![no_main]

use svsm_uefi_auth::api::{ATTR_APPEND_WRITE, KEY_DATABASE_ATTRIBUTES};
use svsm_uefi_auth::{EfiTime, KeyDatabases, SecureBootVariable, SetVariableRequest, StoredVariable, authorise};

struct OnlyPk<'a>(Option<&'a [u8]>);

impl KeyDatabases for OnlyPk<'_> {
    fn stored(&self, variable: SecureBootVariable) -> Option<StoredVariable<'_>> {
        match variable {
            SecureBootVariable::Pk => self.0.map(|data| StoredVariable { data, timestamp: EfiTime::default() }),
            _ => None,
        }
    }
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let [selector, l0, l1, rest @ ..] = input else { return };
    let pk_len = usize::from(u16::from_le_bytes([*l0, *l1])).min(rest.len());
    let (pk, data) = rest.split_at(pk_len);
    let variable = SecureBootVariable::ALL[usize::from(selector & 7) % SecureBootVariable::ALL.len()];
    let db = OnlyPk((selector & 8 != 0).then_some(pk));
    let attributes = KEY_DATABASE_ATTRIBUTES | if selector & 16 != 0 { ATTR_APPEND_WRITE } else { 0 };
    let name: Vec<u16> = variable.name().encode_utf16().collect();
    let request = SetVariableRequest { name: &name, guid: variable.guid(), attributes, data };
    if let Err(e) = authorise(&db, &request) {
        let _ = e.efi_status();
    }
});
