//! Test doubles for the two services the SVSM cannot run here without the real parts.
//!
//! * [`VtpmDouble`] stands in for the libtpms-backed vTPM until it is plugged in. It speaks the real TPM 2.0
//!   wire format, byte for byte, for exactly the commands the attestation path and the benchmarks need
//!   (CreatePrimary on the endorsement hierarchy, FlushContext, GetRandom, Startup) and answers everything
//!   else with rc::COMMAND_CODE. It is a double: it holds one RSA-2048 public key supplied by the test
//!   (a real key the test generated) instead of deriving keys from a primary seed, and it only creates RSA
//!   keys (ECC templates get rc::CURVE).
//! * [`UnsignedReportDouble`] stands in for SNP firmware when a test only needs the report *shape*: it returns
//!   a version-3, 1184-byte report carrying the REPORT_DATA, with an all-zero signature. The real simulated
//!   platform that signs reports with a simulated VCEK lives in `svsm-attest`.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use crate::api::{CertificateRequest, SnpPlatform, SnpReportResponse, VtpmService};
use crate::error::{PlatformError, VtpmError};
use svsm_vtpm::marshal::{PublicArea, PublicKey, Reader, alg, cc, object_name, rc, rh, st};

/// Transient object slots, as on a typical TPM (MAX_LOADED_OBJECTS = 3).
const MAX_LOADED_OBJECTS: usize = 3;

/// A TPM 2.0 wire-format double for the vTPM service (see the module docs for what it is not).
#[derive(Debug, Clone)]
pub struct VtpmDouble {
    rsa2048_modulus: [u8; 256],
    loaded: BTreeSet<u32>,
    next_handle: u32,
    random_state: [u8; 32],
    /// Every command code received, in order (for assertions).
    pub commands: Vec<u32>,
}

impl VtpmDouble {
    /// A double whose RSA-2048 objects all carry `rsa2048_modulus` (big-endian, the test's real key).
    pub fn new(rsa2048_modulus: [u8; 256], random_seed: [u8; 32]) -> Self {
        VtpmDouble {
            rsa2048_modulus,
            loaded: BTreeSet::new(),
            next_handle: 0x8000_0000,
            random_state: random_seed,
            commands: Vec::new(),
        }
    }

    /// Transient objects currently loaded (a leak shows up here).
    pub fn loaded_objects(&self) -> usize {
        self.loaded.len()
    }

    fn random(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            self.random_state = Sha256::digest(self.random_state).into();
            out.extend_from_slice(&self.random_state);
        }
        out.truncate(n);
        out
    }

    fn create_primary(&mut self, body: &[u8]) -> Result<Vec<u8>, u32> {
        let mut r = Reader::new(body);
        let hierarchy = r.u32().map_err(|_| rc::INSUFFICIENT)?;
        if hierarchy != rh::ENDORSEMENT {
            return Err(rc::HIERARCHY);
        }
        let auth_size = r.u32().map_err(|_| rc::INSUFFICIENT)?;
        r.take(auth_size as usize).map_err(|_| rc::INSUFFICIENT)?;
        r.tpm2b().map_err(|_| rc::INSUFFICIENT)?; // inSensitive
        let template = r.tpm2b().map_err(|_| rc::INSUFFICIENT)?;
        r.tpm2b().map_err(|_| rc::INSUFFICIENT)?; // outsideInfo
        let pcr_count = r.u32().map_err(|_| rc::INSUFFICIENT)?;
        for _ in 0..pcr_count {
            r.u16().map_err(|_| rc::INSUFFICIENT)?;
            let n = r.u8().map_err(|_| rc::INSUFFICIENT)?;
            r.take(usize::from(n)).map_err(|_| rc::INSUFFICIENT)?;
        }
        if r.remaining() != 0 {
            return Err(rc::COMMAND_SIZE);
        }
        let parsed = PublicArea::parse(template).map_err(|_| rc::VALUE)?;
        let unique_len = match &parsed.key {
            PublicKey::Rsa { key_bits: 2048, modulus, .. } => modulus.len(),
            PublicKey::Rsa { .. } => return Err(rc::KEY_SIZE),
            PublicKey::Ecc { .. } => return Err(rc::CURVE),
            PublicKey::KeyedHash { .. } | PublicKey::SymCipher { .. } => return Err(rc::VALUE),
        };
        if self.loaded.len() >= MAX_LOADED_OBJECTS {
            return Err(rc::OBJECT_MEMORY);
        }
        // outPublic = the template with `unique` replaced by the key's modulus.
        let mut public = template.get(..template.len() - unique_len - 2).ok_or(rc::VALUE)?.to_vec();
        public.extend_from_slice(&256u16.to_be_bytes());
        public.extend_from_slice(&self.rsa2048_modulus);

        let handle = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1) | 0x8000_0000;
        self.loaded.insert(handle);

        let name = object_name(parsed.name_alg, &public).ok_or(rc::VALUE)?;
        let hierarchy_name = rh::ENDORSEMENT.to_be_bytes();
        // TPMS_CREATION_DATA: no PCRs, empty pcrDigest, locality 0, parentNameAlg NULL, parent names = handle.
        let mut creation = Vec::new();
        creation.extend_from_slice(&0u32.to_be_bytes());
        creation.extend_from_slice(&0u16.to_be_bytes());
        creation.push(0);
        creation.extend_from_slice(&alg::NULL.to_be_bytes());
        for _ in 0..2 {
            creation.extend_from_slice(&4u16.to_be_bytes());
            creation.extend_from_slice(&hierarchy_name);
        }
        creation.extend_from_slice(&0u16.to_be_bytes());
        let creation_hash = Sha256::digest(&creation);

        let mut params = Vec::new();
        params.extend_from_slice(&(public.len() as u16).to_be_bytes());
        params.extend_from_slice(&public);
        params.extend_from_slice(&(creation.len() as u16).to_be_bytes());
        params.extend_from_slice(&creation);
        params.extend_from_slice(&32u16.to_be_bytes());
        params.extend_from_slice(&creation_hash);
        params.extend_from_slice(&0x8021u16.to_be_bytes()); // TPM_ST_CREATION
        params.extend_from_slice(&rh::ENDORSEMENT.to_be_bytes());
        params.extend_from_slice(&32u16.to_be_bytes());
        params.extend_from_slice(&Sha256::digest(&params));
        params.extend_from_slice(&(name.len() as u16).to_be_bytes());
        params.extend_from_slice(&name);

        let mut body = Vec::new();
        body.extend_from_slice(&handle.to_be_bytes());
        body.extend_from_slice(&(params.len() as u32).to_be_bytes());
        body.extend_from_slice(&params);
        // Password-session response: empty nonce, continueSession, empty HMAC.
        body.extend_from_slice(&[0, 0, 1, 0, 0]);
        Ok(body)
    }
}

fn respond(tag: u16, rc: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + body.len());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&rc.to_be_bytes());
    out.extend_from_slice(body);
    out
}

impl VtpmService for VtpmDouble {
    fn send_command(&mut self, _locality: u8, command: &[u8]) -> Result<Vec<u8>, VtpmError> {
        let mut r = Reader::new(command);
        let (Some(tag), Some(size), Some(cc)) = (r.u16().ok(), r.u32().ok(), r.u32().ok()) else {
            return Ok(respond(st::NO_SESSIONS, rc::INSUFFICIENT, &[]));
        };
        if size as usize != command.len() {
            return Ok(respond(st::NO_SESSIONS, rc::COMMAND_SIZE, &[]));
        }
        if tag != st::NO_SESSIONS && tag != st::SESSIONS {
            return Ok(respond(st::NO_SESSIONS, rc::TAG, &[]));
        }
        self.commands.push(cc);
        let body = command.get(10..).unwrap_or_default();
        let err = |rc| Ok(respond(st::NO_SESSIONS, rc, &[]));
        match cc {
            cc::GET_RANDOM => {
                let Some(n) = Reader::new(body).u16().ok() else { return err(rc::INSUFFICIENT) };
                let n = usize::from(n).min(64);
                let mut out = Vec::with_capacity(2 + n);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                out.extend_from_slice(&self.random(n));
                Ok(respond(st::NO_SESSIONS, 0, &out))
            }
            cc::CREATE_PRIMARY => {
                if tag != st::SESSIONS {
                    return err(rc::AUTH_MISSING);
                }
                match self.create_primary(body) {
                    Ok(out) => Ok(respond(st::SESSIONS, 0, &out)),
                    Err(rc) => err(rc),
                }
            }
            cc::FLUSH_CONTEXT => {
                let Some(h) = Reader::new(body).u32().ok() else { return err(rc::INSUFFICIENT) };
                if self.loaded.remove(&h) { Ok(respond(st::NO_SESSIONS, 0, &[])) } else { err(rc::HANDLE_P1) }
            }
            cc::STARTUP => Ok(respond(st::NO_SESSIONS, 0, &[])),
            _ => err(rc::COMMAND_CODE),
        }
    }
}

/// An SNP-firmware double: unsigned version-3 reports carrying REPORT_DATA (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct UnsignedReportDouble {
    /// The certificate table an extended request returns (empty = the host has none).
    pub certificates: Vec<u8>,
    /// When set, every request fails as the firmware would on error.
    pub fail: bool,
    /// Number of requests served.
    pub requests: usize,
}

impl SnpPlatform for UnsignedReportDouble {
    fn request_report(
        &mut self,
        report_data: &[u8; 64],
        certificates: CertificateRequest,
    ) -> Result<SnpReportResponse, PlatformError> {
        self.requests += 1;
        if self.fail {
            return Err(PlatformError::RequestFailed("firmware double told to fail"));
        }
        let mut report = alloc::vec![0u8; crate::SNP_REPORT_SIZE];
        report[0..4].copy_from_slice(&3u32.to_le_bytes());
        report[0x34..0x38].copy_from_slice(&1u32.to_le_bytes()); // SIGNATURE_ALGO = ECDSA P-384 SHA-384
        report[0x50..0x90].copy_from_slice(report_data);
        let certificates = match certificates {
            CertificateRequest::None => Vec::new(),
            CertificateRequest::UpTo(cap) => {
                let needed = self.certificates.len().div_ceil(4096) * 4096;
                if self.certificates.len() > cap as usize {
                    return Err(PlatformError::CertificatesTooLarge { needed: needed as u32 });
                }
                self.certificates.clone()
            }
        };
        Ok(SnpReportResponse { report, certificates })
    }
}
