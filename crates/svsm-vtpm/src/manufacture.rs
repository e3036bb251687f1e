//! Manufacturing a vTPM: fresh seeds, endorsement keys per the TCG EK Credential Profile, optional EK
//! certificates, persistent handles and templates, and the record that proves it was done.
//!
//! The engine manufactures its seeds itself the first time it powers on with empty storage; everything after
//! that is ordinary TPM commands sent through [`TpmEngine::execute`], so the same logic works on any engine.
//! Callers stage the whole manufacture in a [`crate::MemNvStorage`] and then commit the final `Permanent` blob
//! together with the [`ManufactureRecord`] in **one** durable transaction: a crash mid-way leaves no trace,
//! and a store with one but not the other is damaged (see [`inspect`]), never silently re-manufactured.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::api::{NvBlob, NvStorage, TpmEngine};
use crate::error::{MarshalError, VtpmError};
use crate::marshal::{
    self, CreatedPrimary, NvPublic, PublicArea, PublicKey, Reader, Scheme, alg, cmd, nv_attr, rh, su,
};

/// PolicyA (SHA-256) of the EK Credential Profile: PolicySecret(TPM_RH_ENDORSEMENT).
pub const POLICY_A_SHA256: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD,
    0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
];

/// Object attributes of the low-range EK templates: fixedTPM | fixedParent | sensitiveDataOrigin |
/// adminWithPolicy | restricted | decrypt (0x000300B2).
pub const EK_ATTRIBUTES: u32 = marshal::object_attr::FIXED_TPM
    | marshal::object_attr::FIXED_PARENT
    | marshal::object_attr::SENSITIVE_DATA_ORIGIN
    | marshal::object_attr::ADMIN_WITH_POLICY
    | marshal::object_attr::RESTRICTED
    | marshal::object_attr::DECRYPT;
const _: () = assert!(EK_ATTRIBUTES == 0x0003_00B2);

/// NV attributes of EK certificate and template indices: written with platform authorization so the owner
/// cannot delete them, readable by owner and by index auth, exempt from dictionary-attack lockout.
pub const EK_NV_ATTRIBUTES: u32 = nv_attr::PPWRITE
    | nv_attr::PPREAD
    | nv_attr::OWNERREAD
    | nv_attr::AUTHREAD
    | nv_attr::NO_DA
    | nv_attr::PLATFORMCREATE;

/// Largest NV_Write payload libtpms accepts (MAX_NV_BUFFER_SIZE).
pub const NV_WRITE_CHUNK: usize = 1024;

/// Largest NV index libtpms allows (MAX_NV_INDEX_SIZE); a larger certificate is refused up front.
pub const MAX_NV_INDEX_SIZE: usize = 2048;

/// The low-range EK template L-1 (RSA-2048) of the EK Credential Profile.
pub fn ek_template_rsa2048() -> PublicArea {
    PublicArea {
        name_alg: alg::SHA256,
        attributes: EK_ATTRIBUTES,
        auth_policy: POLICY_A_SHA256.to_vec(),
        key: PublicKey::Rsa {
            symmetric: Some((alg::AES, 128, alg::CFB)),
            scheme: Scheme::Null,
            key_bits: 2048,
            exponent: 0,
            modulus: vec![0; 256],
        },
    }
}

/// The low-range EK template L-2 (ECC NIST P-256) of the EK Credential Profile.
pub fn ek_template_ecc_p256() -> PublicArea {
    PublicArea {
        name_alg: alg::SHA256,
        attributes: EK_ATTRIBUTES,
        auth_policy: POLICY_A_SHA256.to_vec(),
        key: PublicKey::Ecc {
            symmetric: Some((alg::AES, 128, alg::CFB)),
            scheme: Scheme::Null,
            curve: 0x0003,
            kdf: Scheme::Null,
            x: vec![0; 32],
            y: vec![0; 32],
        },
    }
}

/// The endorsement keys a vTPM is manufactured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EkKind {
    /// RSA-2048, template L-1.
    Rsa2048,
    /// ECC NIST P-256, template L-2.
    EccP256,
}

impl EkKind {
    /// Both kinds, in manufacturing order.
    pub const ALL: [EkKind; 2] = [EkKind::Rsa2048, EkKind::EccP256];

    /// The profile's template.
    pub fn template(self) -> PublicArea {
        match self {
            EkKind::Rsa2048 => ek_template_rsa2048(),
            EkKind::EccP256 => ek_template_ecc_p256(),
        }
    }

    /// NV index of the EK certificate.
    pub fn cert_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01C0_0002,
            EkKind::EccP256 => 0x01C0_000A,
        }
    }

    /// NV index of the EK template.
    pub fn template_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01C0_0004,
            EkKind::EccP256 => 0x01C0_000C,
        }
    }

    /// Conventional persistent handle of the EK.
    pub fn persistent_handle(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x8101_0001,
            EkKind::EccP256 => 0x8101_0002,
        }
    }

    /// Short human name.
    pub fn label(self) -> &'static str {
        match self {
            EkKind::Rsa2048 => "RSA-2048 (L-1)",
            EkKind::EccP256 => "ECC P-256 (L-2)",
        }
    }

    /// The profile template's name, e.g. "TCG EK template L-1 (RSA-2048)".
    pub fn profile_label(self) -> &'static str {
        match self {
            EkKind::Rsa2048 => "TCG EK template L-1 (RSA-2048)",
            EkKind::EccP256 => "TCG EK template L-2 (ECC NIST P-256)",
        }
    }

    /// The marshalled template (TPMT_PUBLIC with the profile's all-zero unique), as a guest sends it in a
    /// CreatePrimary or an SVSM attestation selector.
    pub fn template_bytes(self) -> Vec<u8> {
        // The templates are constants well inside every TPM2B limit, so marshalling cannot fail (the tests
        // pin their bytes); an empty template would only make CreatePrimary fail, never panic.
        self.template().marshal().unwrap_or_default()
    }

    /// Which profile template `created` (a TPMT_PUBLIC that CreatePrimary returned, e.g. from attestation
    /// evidence) was made from: every byte must equal the template's except the `unique` field, which holds
    /// the created key. `None` for anything else (other attributes, an authPolicy other than PolicyA, other
    /// parameters, a damaged area): such a key is not an EK, whatever hierarchy it was created on.
    pub fn of_created(created: &[u8]) -> Option<EkKind> {
        let parsed = PublicArea::parse(created).ok()?;
        let kind = match parsed.key {
            PublicKey::Rsa { .. } => EkKind::Rsa2048,
            PublicKey::Ecc { .. } => EkKind::EccP256,
            PublicKey::KeyedHash { .. } | PublicKey::SymCipher { .. } => return None,
        };
        let mut expected = kind.template();
        match (&mut expected.key, parsed.key) {
            (PublicKey::Rsa { modulus, .. }, PublicKey::Rsa { modulus: m, .. }) => *modulus = m,
            (PublicKey::Ecc { x, y, .. }, PublicKey::Ecc { x: px, y: py, .. }) => {
                *x = px;
                *y = py;
            }
            _ => return None,
        }
        (expected.marshal().ok()? == created).then_some(kind)
    }

    fn code(self) -> u8 {
        match self {
            EkKind::Rsa2048 => 1,
            EkKind::EccP256 => 2,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(EkKind::Rsa2048),
            2 => Some(EkKind::EccP256),
            _ => None,
        }
    }
}

/// Issues an EK certificate for a public key (implemented on the host with the operator's CA, or the
/// development CA of the state directory).
pub trait EkCertIssuer {
    /// Returns the DER certificate for `public`, the EK of `kind`.
    fn issue(&mut self, kind: EkKind, public: &PublicArea) -> Result<Vec<u8>, String>;

    /// Who this issuer is, for the manufacture record (`tpm info` shows it).
    fn describe(&self) -> CertIssuer;
}

/// The CA that signed a TPM's EK certificates, as recorded at manufacture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIssuer {
    /// Whether it is a development CA (its key sits beside the state; its certificates prove nothing).
    pub development: bool,
    /// Human description: the CA's subject and where its certificate is.
    pub description: String,
}

/// How a TPM's state came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Manufactured here (fresh seeds).
    Manufactured,
    /// Imported from a swtpm state directory (its seeds, EKs and NV contents are swtpm's).
    ImportedSwtpm,
}

/// What to provision besides the seeds and EKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManufactureOptions {
    /// Make the EKs persistent at their conventional handles (0x81010001 / 0x81010002).
    pub persist_eks: bool,
    /// Write the EK templates to their NV indices (0x01C00004 / 0x01C0000C).
    pub write_templates: bool,
}

impl Default for ManufactureOptions {
    fn default() -> Self {
        ManufactureOptions { persist_eks: false, write_templates: true }
    }
}

/// What was provisioned for one EK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EkRecord {
    /// Which EK.
    pub kind: EkKind,
    /// Persistent handle, if the EK was made persistent.
    pub persistent_handle: Option<u32>,
    /// Size of the certificate written to [`EkKind::cert_index`], if one was.
    pub cert_len: Option<u16>,
    /// Whether the template was written to [`EkKind::template_index`].
    pub template_written: bool,
    /// The EK's Name (nameAlg || SHA-256(public area)).
    pub name: Vec<u8>,
    /// The EK's marshalled TPMT_PUBLIC.
    pub public: Vec<u8>,
}

/// The durable proof that a TPM was manufactured, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManufactureRecord {
    /// One entry per EK.
    pub eks: Vec<EkRecord>,
    /// Manufactured here or imported.
    pub origin: Origin,
    /// The CA that signed the EK certificates written at manufacture, if any (version-1 records and imported
    /// TPMs: `None`).
    pub cert_issuer: Option<CertIssuer>,
}

impl ManufactureRecord {
    /// A record of a TPM manufactured here with `eks` and no certificate issuer.
    pub fn manufactured(eks: Vec<EkRecord>) -> Self {
        ManufactureRecord { eks, origin: Origin::Manufactured, cert_issuer: None }
    }
}

const RECORD_MAGIC: &[u8; 8] = b"SVTPMMF1";
/// Version 2 adds the origin and the certificate issuer after the EKs; version 1 is still read.
const RECORD_VERSION: u16 = 2;

impl ManufactureRecord {
    /// Encodes the record (versioned binary format).
    pub fn encode(&self) -> Result<Vec<u8>, MarshalError> {
        let mut out = Vec::with_capacity(64 + self.eks.len() * 400);
        out.extend_from_slice(RECORD_MAGIC);
        out.extend_from_slice(&RECORD_VERSION.to_be_bytes());
        out.push(u8::try_from(self.eks.len()).map_err(|_| MarshalError::TooLarge)?);
        for ek in &self.eks {
            out.push(ek.kind.code());
            out.extend_from_slice(&ek.persistent_handle.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&ek.cert_len.unwrap_or(0).to_be_bytes());
            out.push(u8::from(ek.template_written));
            marshal::put_tpm2b(&mut out, &ek.name)?;
            marshal::put_tpm2b(&mut out, &ek.public)?;
        }
        out.push(match self.origin {
            Origin::Manufactured => 1,
            Origin::ImportedSwtpm => 2,
        });
        match &self.cert_issuer {
            None => out.push(0),
            Some(issuer) => {
                out.push(if issuer.development { 2 } else { 1 });
                marshal::put_tpm2b(&mut out, issuer.description.as_bytes())?;
            }
        }
        Ok(out)
    }

    /// Decodes a record; any deviation from the format is an error.
    pub fn decode(buf: &[u8]) -> Result<Self, MarshalError> {
        let mut r = Reader::new(buf);
        if r.take(8)? != RECORD_MAGIC {
            return Err(MarshalError::Unsupported("not a manufacture record (bad magic)"));
        }
        let version = r.u16()?;
        if version != 1 && version != RECORD_VERSION {
            return Err(MarshalError::Unsupported("manufacture record version"));
        }
        let n = r.u8()?;
        let mut eks = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let kind = EkKind::from_code(r.u8()?).ok_or(MarshalError::Unsupported("EK kind"))?;
            let handle = r.u32()?;
            let cert_len = r.u16()?;
            let template_written = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(MarshalError::Unsupported("template flag")),
            };
            let name = r.tpm2b()?.to_vec();
            let public = r.tpm2b()?.to_vec();
            PublicArea::parse(&public)?;
            eks.push(EkRecord {
                kind,
                persistent_handle: (handle != 0).then_some(handle),
                cert_len: (cert_len != 0).then_some(cert_len),
                template_written,
                name,
                public,
            });
        }
        let mut record = ManufactureRecord::manufactured(eks);
        if version >= 2 {
            record.origin = match r.u8()? {
                1 => Origin::Manufactured,
                2 => Origin::ImportedSwtpm,
                _ => return Err(MarshalError::Unsupported("manufacture record origin")),
            };
            let development = match r.u8()? {
                0 => None,
                1 => Some(false),
                2 => Some(true),
                _ => return Err(MarshalError::Unsupported("manufacture record issuer kind")),
            };
            if let Some(development) = development {
                let description = core::str::from_utf8(r.tpm2b()?)
                    .map_err(|_| MarshalError::Unsupported("issuer description is not UTF-8"))?;
                record.cert_issuer = Some(CertIssuer { development, description: description.into() });
            }
        }
        if r.remaining() != 0 {
            return Err(MarshalError::Unsupported("trailing bytes after manufacture record"));
        }
        Ok(record)
    }
}

/// What a store holds, as far as the vTPM is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredState {
    /// No TPM state and no manufacture record: a TPM may be manufactured here.
    Empty,
    /// A manufactured TPM.
    Manufactured(ManufactureRecord),
}

/// Classifies a store. A store with TPM state but no record, or a record but no TPM state, is an error:
/// both mean damage or tampering, and re-manufacturing would silently replace the TPM's identity.
pub fn inspect(storage: &mut dyn NvStorage) -> Result<StoredState, VtpmError> {
    let permanent = storage.load(NvBlob::Permanent)?;
    let record = storage.load(NvBlob::Manufacture)?;
    match (permanent, record) {
        (None, None) => Ok(StoredState::Empty),
        (Some(_), Some(rec)) => {
            let rec = ManufactureRecord::decode(&rec)
                .map_err(|error| VtpmError::Manufacture { step: "decode manufacture record", error })?;
            Ok(StoredState::Manufactured(rec))
        }
        (Some(_), None) => Err(VtpmError::Inconsistent(
            "the store holds TPM state but no manufacture record: it is damaged or was tampered with; \
             restore it from a backup (it will not be re-manufactured automatically)",
        )),
        (None, Some(_)) => Err(VtpmError::Inconsistent(
            "the store says a TPM was manufactured but its TPM state is missing: it is damaged or was \
             tampered with; restore it from a backup (it will not be re-manufactured automatically)",
        )),
    }
}

fn run(
    engine: &mut dyn TpmEngine,
    step: &'static str,
    command: Result<Vec<u8>, MarshalError>,
) -> Result<Vec<u8>, VtpmError> {
    let command = command.map_err(|error| VtpmError::Manufacture { step, error })?;
    let resp = engine.execute(0, &command)?;
    let code = marshal::response_code(&resp).map_err(|error| VtpmError::Manufacture { step, error })?;
    if code != marshal::rc::SUCCESS {
        return Err(VtpmError::Manufacture { step, error: MarshalError::ResponseCode(code) });
    }
    Ok(resp)
}

fn write_nv(
    engine: &mut dyn TpmEngine,
    index: u32,
    data: &[u8],
    step: &'static str,
) -> Result<(), VtpmError> {
    if data.len() > MAX_NV_INDEX_SIZE {
        return Err(VtpmError::Manufacture { step, error: MarshalError::TooLarge });
    }
    let size = u16::try_from(data.len())
        .map_err(|_| VtpmError::Manufacture { step, error: MarshalError::TooLarge })?;
    let public = NvPublic {
        index,
        name_alg: alg::SHA256,
        attributes: EK_NV_ATTRIBUTES,
        auth_policy: Vec::new(),
        data_size: size,
    };
    run(engine, step, cmd::nv_define_space(rh::PLATFORM, &public))?;
    let mut offset = 0usize;
    for chunk in data.chunks(NV_WRITE_CHUNK) {
        let off = u16::try_from(offset)
            .map_err(|_| VtpmError::Manufacture { step, error: MarshalError::TooLarge })?;
        run(engine, step, cmd::nv_write(rh::PLATFORM, index, chunk, off))?;
        offset = offset.saturating_add(chunk.len());
    }
    Ok(())
}

/// Provisions a freshly powered-on, never-started TPM: Startup(CLEAR), both EKs, optional certificates
/// (from `issuer`), templates and persistent handles, then Shutdown(CLEAR). Returns the record to commit
/// together with the final NV state.
pub fn manufacture(
    engine: &mut dyn TpmEngine,
    options: ManufactureOptions,
    mut issuer: Option<&mut dyn EkCertIssuer>,
) -> Result<ManufactureRecord, VtpmError> {
    run(engine, "TPM2_Startup(CLEAR)", cmd::startup(su::CLEAR))?;
    let cert_issuer = issuer.as_deref().map(EkCertIssuer::describe);
    let mut eks = Vec::with_capacity(EkKind::ALL.len());
    for kind in EkKind::ALL {
        let resp = run(engine, "CreatePrimary(EK)", cmd::create_primary(rh::ENDORSEMENT, &kind.template()))?;
        let created = CreatedPrimary::parse(&resp)
            .map_err(|error| VtpmError::Manufacture { step: "parse CreatePrimary(EK)", error })?;
        let mut cert_len = None;
        if let Some(issuer) = issuer.as_deref_mut() {
            let cert = issuer.issue(kind, &created.public).map_err(|_| VtpmError::Manufacture {
                step: "issue EK certificate",
                error: MarshalError::Unsupported("the EK certificate issuer failed (see log)"),
            })?;
            write_nv(engine, kind.cert_index(), &cert, "write EK certificate")?;
            cert_len = u16::try_from(cert.len()).ok();
        }
        if options.write_templates {
            let template = kind
                .template()
                .marshal()
                .map_err(|error| VtpmError::Manufacture { step: "template", error })?;
            write_nv(engine, kind.template_index(), &template, "write EK template")?;
        }
        let mut persistent_handle = None;
        if options.persist_eks {
            run(
                engine,
                "EvictControl(EK)",
                cmd::evict_control(rh::OWNER, created.handle, kind.persistent_handle()),
            )?;
            persistent_handle = Some(kind.persistent_handle());
        }
        run(engine, "FlushContext(EK)", cmd::flush_context(created.handle))?;
        eks.push(EkRecord {
            kind,
            persistent_handle,
            cert_len,
            template_written: options.write_templates,
            name: created.name,
            public: created.public_bytes,
        });
    }
    run(engine, "TPM2_Shutdown(CLEAR)", cmd::shutdown(su::CLEAR))?;
    Ok(ManufactureRecord { eks, origin: Origin::Manufactured, cert_issuer })
}

/// Sends `command` and returns the response if it succeeded, `None` if the TPM answered with an error code.
fn try_run(
    engine: &mut dyn TpmEngine,
    step: &'static str,
    command: Result<Vec<u8>, MarshalError>,
) -> Result<Option<Vec<u8>>, VtpmError> {
    let command = command.map_err(|error| VtpmError::Manufacture { step, error })?;
    let resp = engine.execute(0, &command)?;
    let code = marshal::response_code(&resp).map_err(|error| VtpmError::Manufacture { step, error })?;
    Ok((code == marshal::rc::SUCCESS).then_some(resp))
}

/// Surveys the EKs of a TPM that was manufactured elsewhere (a swtpm state being imported): derives both
/// profile EKs from its endorsement seed (empty endorsement auth, as the profile expects) and notes which
/// certificates, templates and persistent EK handles it already holds. Runs Startup(CLEAR) ... Shutdown(CLEAR):
/// give it a scratch copy of the state, not the state to keep. An EK the TPM refuses to create (an
/// endorsement hierarchy password, or a disabled hierarchy) is left out of the result, not an error: the
/// state is still a valid TPM, only its EKs cannot be derived without that password.
pub fn survey(engine: &mut dyn TpmEngine) -> Result<Vec<EkRecord>, VtpmError> {
    run(engine, "TPM2_Startup(CLEAR)", cmd::startup(su::CLEAR))?;
    let mut eks = Vec::with_capacity(EkKind::ALL.len());
    for kind in EkKind::ALL {
        let Some(resp) =
            try_run(engine, "CreatePrimary(EK)", cmd::create_primary(rh::ENDORSEMENT, &kind.template()))?
        else {
            continue;
        };
        let created = CreatedPrimary::parse(&resp)
            .map_err(|error| VtpmError::Manufacture { step: "parse CreatePrimary(EK)", error })?;
        run(engine, "FlushContext(EK)", cmd::flush_context(created.handle))?;
        let nv_size = |engine: &mut dyn TpmEngine, index: u32| -> Result<Option<u16>, VtpmError> {
            let step = "NV_ReadPublic";
            let Some(resp) = try_run(engine, step, cmd::nv_read_public(index))? else { return Ok(None) };
            let parsed = marshal::Response::parse(&resp, 0)
                .and_then(|r| Reader::new(r.params).tpm2b().and_then(NvPublic::parse))
                .map_err(|error| VtpmError::Manufacture { step, error })?;
            Ok(Some(parsed.data_size))
        };
        let cert_len = nv_size(engine, kind.cert_index())?;
        let template_written = nv_size(engine, kind.template_index())?.is_some();
        let persistent_handle =
            match try_run(engine, "ReadPublic", cmd::read_public(kind.persistent_handle()))? {
                Some(resp) => {
                    let name = marshal::Response::parse(&resp, 0)
                        .and_then(|r| {
                            let mut p = Reader::new(r.params);
                            p.tpm2b()?;
                            Ok(p.tpm2b()?.to_vec())
                        })
                        .map_err(|error| VtpmError::Manufacture { step: "parse ReadPublic", error })?;
                    (name == created.name).then_some(kind.persistent_handle())
                }
                None => None,
            };
        eks.push(EkRecord {
            kind,
            persistent_handle,
            cert_len,
            template_written,
            name: created.name,
            public: created.public_bytes,
        });
    }
    run(engine, "TPM2_Shutdown(CLEAR)", cmd::shutdown(su::CLEAR))?;
    Ok(eks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_template_is_the_profiles_314_byte_area() {
        let t = ek_template_rsa2048().marshal().unwrap();
        assert_eq!(t.len(), 314);
        assert_eq!(&t[..8], &[0x00, 0x01, 0x00, 0x0B, 0x00, 0x03, 0x00, 0xB2]);
        assert_eq!(EkKind::Rsa2048.template_bytes(), t);
        let p = PublicArea::parse(&t).unwrap();
        assert_eq!(p.auth_policy, POLICY_A_SHA256);
        match p.key {
            PublicKey::Rsa { symmetric, scheme, key_bits, exponent, modulus } => {
                assert_eq!((symmetric, scheme), (Some((alg::AES, 128, alg::CFB)), Scheme::Null));
                assert_eq!((key_bits, exponent, modulus.len()), (2048, 0, 256));
                assert!(modulus.iter().all(|b| *b == 0));
            }
            other => panic!("not RSA: {other:?}"),
        }
        let e = PublicArea::parse(&EkKind::EccP256.template_bytes()).unwrap();
        assert!(matches!(e.key, PublicKey::Ecc { curve: 3, .. }));
    }

    #[test]
    fn only_a_profile_template_with_a_key_in_unique_is_an_ek() {
        for kind in EkKind::ALL {
            let mut created = kind.template();
            match &mut created.key {
                PublicKey::Rsa { modulus, .. } => modulus.fill(0x5A),
                PublicKey::Ecc { x, y, .. } => {
                    x.fill(1);
                    y.fill(2);
                }
                _ => unreachable!(),
            }
            assert_eq!(EkKind::of_created(&created.marshal().unwrap()), Some(kind));
            let mut other = created.clone();
            other.auth_policy[0] ^= 1;
            assert_eq!(EkKind::of_created(&other.marshal().unwrap()), None);
            let mut other = created.clone();
            other.attributes |= marshal::object_attr::USER_WITH_AUTH;
            assert_eq!(EkKind::of_created(&other.marshal().unwrap()), None);
            let mut other = created;
            if let PublicKey::Rsa { scheme, .. } | PublicKey::Ecc { scheme, .. } = &mut other.key {
                *scheme = Scheme::Hash { alg: 0x0018, hash: alg::SHA256 };
            }
            assert_eq!(EkKind::of_created(&other.marshal().unwrap()), None);
        }
        assert_eq!(EkKind::of_created(&[1, 2, 3]), None);
    }

    #[test]
    fn record_round_trips_and_rejects_damage() {
        let rec = ManufactureRecord {
            origin: Origin::ImportedSwtpm,
            cert_issuer: Some(CertIssuer { development: true, description: "CN=x".into() }),
            eks: vec![EkRecord {
                kind: EkKind::EccP256,
                persistent_handle: Some(0x8101_0002),
                cert_len: Some(700),
                template_written: true,
                name: vec![0, 0x0B, 1, 2, 3],
                public: ek_template_ecc_p256().marshal().unwrap(),
            }],
        };
        let bytes = rec.encode().unwrap();
        assert_eq!(ManufactureRecord::decode(&bytes).unwrap(), rec);
        for cut in 0..bytes.len() {
            assert!(ManufactureRecord::decode(&bytes[..cut]).is_err(), "prefix {cut} accepted");
        }
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(ManufactureRecord::decode(&bad).is_err());
        let mut long = bytes;
        long.push(0);
        assert!(ManufactureRecord::decode(&long).is_err());
    }

    #[test]
    fn version_1_records_still_decode_as_manufactured_without_an_issuer() {
        let rec = ManufactureRecord::manufactured(vec![EkRecord {
            kind: EkKind::Rsa2048,
            persistent_handle: None,
            cert_len: None,
            template_written: false,
            name: vec![0, 0x0B],
            public: ek_template_rsa2048().marshal().unwrap(),
        }]);
        let mut v1 = rec.encode().unwrap();
        // Version 1 = version 2 without the trailing origin and issuer bytes.
        v1[9] = 1;
        v1.truncate(v1.len() - 2);
        assert_eq!(ManufactureRecord::decode(&v1).unwrap(), rec);
    }

    #[test]
    fn inspect_refuses_half_present_state() {
        let mut s = crate::MemNvStorage::new();
        assert_eq!(inspect(&mut s).unwrap(), StoredState::Empty);
        s.store(NvBlob::Permanent, b"x").unwrap();
        assert!(matches!(inspect(&mut s), Err(VtpmError::Inconsistent(_))));
        s.delete(NvBlob::Permanent).unwrap();
        s.store(NvBlob::Manufacture, &ManufactureRecord::manufactured(vec![]).encode().unwrap()).unwrap();
        assert!(matches!(inspect(&mut s), Err(VtpmError::Inconsistent(_))));
        s.store(NvBlob::Permanent, b"x").unwrap();
        assert!(matches!(inspect(&mut s), Ok(StoredState::Manufactured(_))));
    }
}
