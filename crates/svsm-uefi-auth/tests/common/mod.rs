//! Shared by the integration tests: throwaway keys from `openssl`, signature lists from `sbsiglist`, signed
//! updates from `sbvarsign` (or `openssl smime` where a test needs a chosen timestamp or form), and an in-memory
//! key-database store that applies decisions the way the variable service must.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use svsm_uefi_auth::api::{ATTR_APPEND_WRITE, KEY_DATABASE_ATTRIBUTES};
use svsm_uefi_auth::guid::EFI_CERT_TYPE_PKCS7;
use svsm_uefi_auth::{
    AuthError, Decision, EfiTime, KeyDatabases, SecureBootVariable, SetVariableRequest, StoredVariable,
    authorise,
};

/// The owner GUID the tests put on their signature-list entries.
pub const OWNER: &str = "11111111-2222-3333-4444-555555555555";

/// Runs a tool, panicking with its stderr if it fails (a test set-up failure, not a result).
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? see Makefile APT_PACKAGES)"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A working directory with keys and helpers.
pub struct Tools {
    pub dir: tempfile::TempDir,
}

impl Tools {
    pub fn new() -> Self {
        Tools { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A self-signed RSA-2048 certificate and key `NAME.crt`/`NAME.key` (PEM) and `NAME.der`.
    pub fn self_signed(&self, name: &str) {
        run(Command::new("openssl")
            .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "365"])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.crt")))
            .args(["-subj", &format!("/CN=svsm-uefi-auth test {name}/")]));
        self.der(name);
    }

    /// A certificate `NAME` for a new key, issued by `issuer`'s key (a CA-issued signer).
    pub fn issued(&self, name: &str, issuer: &str) {
        run(Command::new("openssl")
            .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256"])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.csr")))
            .args(["-subj", &format!("/CN=svsm-uefi-auth test {name}/")]));
        run(Command::new("openssl")
            .args(["x509", "-req", "-sha256", "-days", "365", "-set_serial", "7"])
            .arg("-in")
            .arg(self.path(&format!("{name}.csr")))
            .arg("-CA")
            .arg(self.path(&format!("{issuer}.crt")))
            .arg("-CAkey")
            .arg(self.path(&format!("{issuer}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.crt"))));
        self.der(name);
    }

    fn der(&self, name: &str) {
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER"])
            .arg("-in")
            .arg(self.path(&format!("{name}.crt")))
            .arg("-out")
            .arg(self.path(&format!("{name}.der"))));
    }

    /// `sbsiglist --type x509` of `NAME.der`: an EFI_SIGNATURE_LIST holding the certificate.
    pub fn cert_list(&self, name: &str) -> Vec<u8> {
        let out = self.path(&format!("{name}.esl"));
        run(Command::new("sbsiglist")
            .args(["--owner", OWNER, "--type", "x509", "--output"])
            .arg(&out)
            .arg(self.path(&format!("{name}.der"))));
        std::fs::read(out).unwrap()
    }

    /// `sbsiglist --type sha256` of a 32-byte digest.
    pub fn hash_list(&self, digest: &[u8; 32]) -> Vec<u8> {
        let input = self.path("digest.bin");
        std::fs::write(&input, digest).unwrap();
        let out = self.path("digest.esl");
        run(Command::new("sbsiglist")
            .args(["--owner", OWNER, "--type", "sha256", "--output"])
            .arg(&out)
            .arg(&input));
        std::fs::read(out).unwrap()
    }

    /// `sbvarsign` of `value` for `variable`, signed by `signer`'s key and certificate; `append` adds
    /// APPEND_WRITE to the signed attributes. sbvarsign stamps the current time (1 s resolution).
    pub fn sbvarsign(
        &self,
        variable: SecureBootVariable,
        value: &[u8],
        signer: &str,
        append: bool,
    ) -> Vec<u8> {
        let input = self.path("value.bin");
        std::fs::write(&input, value).unwrap();
        let out = self.path("value.auth");
        let mut attrs = String::from(
            "NON_VOLATILE,BOOTSERVICE_ACCESS,RUNTIME_ACCESS,TIME_BASED_AUTHENTICATED_WRITE_ACCESS",
        );
        if append {
            attrs.push_str(",APPEND_WRITE");
        }
        run(Command::new("sbvarsign")
            .args(["--attr", &attrs, "--key"])
            .arg(self.path(&format!("{signer}.key")))
            .arg("--cert")
            .arg(self.path(&format!("{signer}.crt")))
            .arg("--output")
            .arg(&out)
            .arg(variable.name())
            .arg(&input));
        std::fs::read(out).unwrap()
    }

    /// An AUTH_2 buffer for `value` with a chosen `timestamp`, signed with `openssl smime` (DER ContentInfo
    /// form, detached); `signed_attrs` keeps OpenSSL's signed attributes (messageDigest...) instead of
    /// `-noattr`; `extra_certs` adds certificates (an intermediate) to the SignedData.
    #[allow(clippy::too_many_arguments)]
    pub fn smime_signed(
        &self,
        variable: SecureBootVariable,
        attributes: u32,
        timestamp: EfiTime,
        value: &[u8],
        signer: &str,
        signed_attrs: bool,
        extra_certs: Option<&str>,
    ) -> Vec<u8> {
        let name: Vec<u16> = variable.name().encode_utf16().collect();
        let ts = timestamp.to_wire();
        let serial = svsm_uefi_auth::auth2::signed_bytes(&name, &variable.guid(), attributes, &ts, value);
        let input = self.path("serial.bin");
        std::fs::write(&input, serial).unwrap();
        let out = self.path("p7.der");
        let mut cmd = Command::new("openssl");
        cmd.args(["smime", "-sign", "-binary", "-md", "sha256", "-outform", "DER", "-signer"])
            .arg(self.path(&format!("{signer}.crt")))
            .arg("-inkey")
            .arg(self.path(&format!("{signer}.key")))
            .arg("-in")
            .arg(&input)
            .arg("-out")
            .arg(&out);
        if !signed_attrs {
            cmd.arg("-noattr");
        }
        if let Some(extra) = extra_certs {
            cmd.arg("-certfile").arg(self.path(&format!("{extra}.crt")));
        }
        run(&mut cmd);
        let p7 = std::fs::read(out).unwrap();
        auth2_buffer(timestamp, &p7, value)
    }
}

/// `EFI_VARIABLE_AUTHENTICATION_2` + `value` around DER PKCS#7 `p7`.
pub fn auth2_buffer(timestamp: EfiTime, p7: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = timestamp.to_wire().to_vec();
    v.extend_from_slice(&(24 + p7.len() as u32).to_le_bytes());
    v.extend_from_slice(&0x0200u16.to_le_bytes());
    v.extend_from_slice(&0x0ef1u16.to_le_bytes());
    v.extend_from_slice(EFI_CERT_TYPE_PKCS7.as_bytes());
    v.extend_from_slice(p7);
    v.extend_from_slice(value);
    v
}

/// The TimeStamp of an AUTH_2 buffer.
pub fn timestamp_of(buffer: &[u8]) -> EfiTime {
    EfiTime::from_wire(buffer[..16].try_into().unwrap())
}

/// An in-memory key-database store applying decisions as the variable service must: store with timestamp,
/// delete, or leave untouched on refusal.
#[derive(Default, Debug)]
pub struct Store {
    pub vars: HashMap<SecureBootVariable, (Vec<u8>, EfiTime)>,
}

impl KeyDatabases for Store {
    fn stored(&self, variable: SecureBootVariable) -> Option<StoredVariable<'_>> {
        self.vars.get(&variable).map(|(data, timestamp)| StoredVariable { data, timestamp: *timestamp })
    }
}

impl Store {
    /// SetVariable(variable, attributes, data) through [`authorise`]; the store changes only on `Ok`.
    pub fn set(
        &mut self,
        variable: SecureBootVariable,
        attributes: u32,
        data: &[u8],
    ) -> Result<Decision, AuthError> {
        let name: Vec<u16> = variable.name().encode_utf16().collect();
        let req = SetVariableRequest { name: &name, guid: variable.guid(), attributes, data };
        let decision = authorise(self, &req)?;
        match &decision {
            Decision::Store { data, timestamp } => {
                self.vars.insert(variable, (data.clone(), *timestamp));
            }
            Decision::Delete => {
                self.vars.remove(&variable);
            }
            Decision::Unchanged => {}
        }
        Ok(decision)
    }

    pub fn value(&self, variable: SecureBootVariable) -> Option<&[u8]> {
        self.vars.get(&variable).map(|(d, _)| d.as_slice())
    }

    pub fn setup_mode(&self) -> bool {
        !self.vars.contains_key(&SecureBootVariable::Pk)
    }
}

/// Attributes of a plain write and of an append.
pub const WRITE: u32 = KEY_DATABASE_ATTRIBUTES;
pub const APPEND: u32 = KEY_DATABASE_ATTRIBUTES | ATTR_APPEND_WRITE;

/// Keys PK, KEK, DB, OTHER, with PK enrolled (sbvarsign, self-signed, setup mode) and KEK enrolled signed by PK
/// (user mode): the starting point of most tests.
pub fn enrolled() -> (Tools, Store) {
    let t = Tools::new();
    for k in ["PK", "KEK", "DB", "OTHER"] {
        t.self_signed(k);
    }
    let mut s = Store::default();
    let pk = t.cert_list("PK");
    let pk_auth = t.sbvarsign(SecureBootVariable::Pk, &pk, "PK", false);
    assert!(s.setup_mode());
    s.set(SecureBootVariable::Pk, WRITE, &pk_auth).expect("PK self-signed enrolment in setup mode");
    assert!(!s.setup_mode());
    let kek = t.cert_list("KEK");
    let kek_auth = t.sbvarsign(SecureBootVariable::Kek, &kek, "PK", false);
    s.set(SecureBootVariable::Kek, WRITE, &kek_auth).expect("KEK signed by PK in user mode");
    (t, s)
}

/// Waits until the wall clock second changes, so the next sbvarsign stamp is later than the previous one.
pub fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}
