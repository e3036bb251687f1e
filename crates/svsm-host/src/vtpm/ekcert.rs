//! EK certificates signed by the operator's provisioning CA (`--ek-ca` / `--ek-ca-key`) or, without one, by
//! a development EK CA that the first start creates in the state directory (`dev-ek-ca.pem`, key
//! `dev-ek-ca.key` 0600), as `swtpm_setup --create-ek-cert` does with swtpm's local CA. The development CA's
//! subject says DEVELOPMENT: its key sits beside the state, so its certificates prove nothing about where the
//! TPM runs; a relying party must not trust it.
//!
//! Certificates follow the TCG EK Credential Profile's shape: empty subject with a critical SubjectAltName
//! directoryName naming the TPM (manufacturer, model, version attributes), EKU tcg-kp-EKCertificate,
//! BasicConstraints CA:false, KeyUsage keyEncipherment (RSA) or keyAgreement (ECC), Subject Directory Attributes
//! with tcg-at-tpmSpecification (2.0, level 0, revision 164), issuer = the CA's subject.
//! The CA key must be ECDSA P-256 or P-384 (PKCS#8 or SEC1 PEM); its certificate must match it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use svsm_vtpm::manufacture::{CertIssuer, EkCertIssuer, EkKind};
use svsm_vtpm::marshal::{PublicArea, PublicKey};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::{BitString, SetOfVec, UintRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Any, Decode as _, DecodePem as _, Encode as _, Tag};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectDirectoryAttributes, SubjectKeyIdentifier,
};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

const TCG_KP_EK_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.8.1");
const TCG_AT_TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
const TCG_AT_TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
const TCG_AT_TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");
const TCG_AT_TPM_SPECIFICATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.16");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// libtpms reports TPM_PT_MANUFACTURER "IBM" (0x49424D00).
const MANUFACTURER: &str = "id:49424D00";
const MODEL: &str = "svsm-vtpm (libtpms)";
const VERSION: &str = "id:00090002";
/// The TPM 2.0 specification libtpms 0.9 implements: family "2.0", level 0, revision 164 (what its
/// TPM_PT_LEVEL / TPM_PT_REVISION report, and what swtpm_setup writes for the same library).
const SPEC_FAMILY: &str = "2.0";
const SPEC_LEVEL: u8 = 0;
const SPEC_REVISION: u16 = 164;

enum CaKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// The development EK CA's certificate in a state directory.
pub const DEV_CA_CERT: &str = "dev-ek-ca.pem";
/// The development EK CA's private key (0600).
pub const DEV_CA_KEY: &str = "dev-ek-ca.key";
/// The development CA's subject common name: the label a relying party sees.
pub const DEV_CA_COMMON_NAME: &str = "svsm-host DEVELOPMENT EK CA - NOT FOR PRODUCTION";

/// A CA that signs EK certificates: the operator's provisioning CA or the state directory's development CA.
pub struct CaIssuer {
    cert: Certificate,
    key: CaKey,
    development: bool,
    cert_path: std::path::PathBuf,
}

impl std::fmt::Debug for CaIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaIssuer").field("subject", &self.cert.tbs_certificate.subject.to_string()).finish()
    }
}

fn load_key(pem: &str) -> anyhow::Result<CaKey> {
    use p256::pkcs8::DecodePrivateKey as _;
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
        return Ok(CaKey::P256(k));
    }
    if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(pem) {
        return Ok(CaKey::P384(k));
    }
    if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
        return Ok(CaKey::P256(k.into()));
    }
    if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
        return Ok(CaKey::P384(k.into()));
    }
    bail!(
        "the CA key is not an ECDSA P-256 or P-384 private key in PKCS#8 or SEC1 PEM (RSA CA keys are not supported)"
    )
}

impl CaIssuer {
    /// Loads the CA certificate and key (PEM files) and checks they belong together.
    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Self> {
        let cert_pem =
            std::fs::read_to_string(cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
        let cert = Certificate::from_pem(cert_pem.as_bytes())
            .with_context(|| format!("{} is not a PEM X.509 certificate", cert_path.display()))?;
        let key_pem =
            std::fs::read_to_string(key_path).with_context(|| format!("reading {}", key_path.display()))?;
        let key = load_key(&key_pem).with_context(|| format!("loading {}", key_path.display()))?;
        let key_spki = match &key {
            CaKey::P256(k) => SubjectPublicKeyInfoOwned::from_key(*k.verifying_key())?,
            CaKey::P384(k) => SubjectPublicKeyInfoOwned::from_key(*k.verifying_key())?,
        };
        if key_spki != cert.tbs_certificate.subject_public_key_info {
            bail!("{} does not hold the key of the certificate {}", key_path.display(), cert_path.display());
        }
        Ok(CaIssuer { cert, key, development: false, cert_path: cert_path.to_path_buf() })
    }

    /// The development EK CA of `state_dir`: loaded if it exists, created (P-256, self-signed, key 0600)
    /// otherwise. Used when no `--ek-ca` is given.
    pub fn development(state_dir: &Path) -> anyhow::Result<Self> {
        let cert_path = state_dir.join(DEV_CA_CERT);
        let key_path = state_dir.join(DEV_CA_KEY);
        if !cert_path.exists() && !key_path.exists() {
            create_development_ca(&cert_path, &key_path)?;
            println!(
                "created a DEVELOPMENT EK CA {} (not for production: its key {} is beside the state; use \
                 --ek-ca/--ek-ca-key for a provisioning CA)",
                cert_path.display(),
                key_path.display()
            );
        }
        let mut ca = Self::load(&cert_path, &key_path).with_context(|| {
            format!(
                "loading the development EK CA in {} (remove both {DEV_CA_CERT} and {DEV_CA_KEY} to \
                 create a new one)",
                state_dir.display()
            )
        })?;
        ca.development = true;
        Ok(ca)
    }

    fn spki_of(public: &PublicArea) -> anyhow::Result<SubjectPublicKeyInfoOwned> {
        match &public.key {
            PublicKey::Rsa { modulus, exponent, .. } => {
                let e = if *exponent == 0 { 65537u32 } else { *exponent };
                let e_bytes = e.to_be_bytes();
                let n = UintRef::new(modulus)?;
                let e = UintRef::new(&e_bytes)?;
                // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
                let body_len = (n.encoded_len()? + e.encoded_len()?)?;
                let mut der = Vec::new();
                x509_cert::der::Header::new(Tag::Sequence, body_len)?.encode_to_vec(&mut der)?;
                n.encode_to_vec(&mut der)?;
                e.encode_to_vec(&mut der)?;
                Ok(SubjectPublicKeyInfoOwned {
                    algorithm: AlgorithmIdentifierOwned {
                        oid: RSA_ENCRYPTION,
                        parameters: Some(Any::null()),
                    },
                    subject_public_key: BitString::from_bytes(&der)?,
                })
            }
            PublicKey::Ecc { curve: 0x0003, x, y, .. } => {
                let mut sec1 = vec![0x04];
                sec1.extend_from_slice(x);
                sec1.extend_from_slice(y);
                let pk =
                    p256::PublicKey::from_sec1_bytes(&sec1).context("the EK is not a valid P-256 point")?;
                Ok(SubjectPublicKeyInfoOwned::from_key(pk)?)
            }
            PublicKey::Ecc { .. } => bail!("only P-256 ECC EKs are certified"),
            PublicKey::KeyedHash { .. } | PublicKey::SymCipher { .. } => {
                bail!("only RSA and ECC keys are certified as EKs")
            }
        }
    }

    fn tpm_name() -> anyhow::Result<Name> {
        let atv = |oid, v: &str| -> anyhow::Result<AttributeTypeAndValue> {
            Ok(AttributeTypeAndValue { oid, value: Any::new(Tag::Utf8String, v.as_bytes())? })
        };
        let set = SetOfVec::try_from(vec![
            atv(TCG_AT_TPM_MANUFACTURER, MANUFACTURER)?,
            atv(TCG_AT_TPM_MODEL, MODEL)?,
            atv(TCG_AT_TPM_VERSION, VERSION)?,
        ])?;
        Ok(RdnSequence(vec![RelativeDistinguishedName(set)]))
    }

    /// Subject Directory Attributes with tcg-at-tpmSpecification: `SET { TPMSpecification ::= SEQUENCE {
    /// family UTF8String, level INTEGER, revision INTEGER } }`.
    fn tpm_specification() -> anyhow::Result<SubjectDirectoryAttributes> {
        let family = x509_cert::der::asn1::Utf8StringRef::new(SPEC_FAMILY)?;
        let level = UintRef::new(&[SPEC_LEVEL])?;
        let rev = SPEC_REVISION.to_be_bytes();
        let revision = UintRef::new(&rev)?;
        let body_len = ((family.encoded_len()? + level.encoded_len()?)? + revision.encoded_len()?)?;
        let mut seq = Vec::new();
        x509_cert::der::Header::new(Tag::Sequence, body_len)?.encode_to_vec(&mut seq)?;
        family.encode_to_vec(&mut seq)?;
        level.encode_to_vec(&mut seq)?;
        revision.encode_to_vec(&mut seq)?;
        Ok(SubjectDirectoryAttributes(vec![AttributeTypeAndValue {
            oid: TCG_AT_TPM_SPECIFICATION,
            value: Any::new(Tag::Set, seq)?,
        }]))
    }

    fn serial() -> anyhow::Result<SerialNumber> {
        use std::io::Read as _;
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        b[0] &= 0x7F;
        b[0] |= 0x01;
        Ok(SerialNumber::new(&b)?)
    }

    /// Issues the EK certificate (DER).
    pub fn issue_der(&self, kind: EkKind, public: &PublicArea) -> anyhow::Result<Vec<u8>> {
        let spki = Self::spki_of(public)?;
        let validity = Validity {
            not_before: Time::try_from(SystemTime::now() - Duration::from_secs(3600))?,
            not_after: Time::INFINITY,
        };
        let issuer = self.cert.tbs_certificate.subject.clone();
        let usage = match kind {
            EkKind::Rsa2048 => KeyUsages::KeyEncipherment,
            EkKind::EccP256 => KeyUsages::KeyAgreement,
        };
        let aki = self
            .cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == SUBJECT_KEY_IDENTIFIER)
            .and_then(|e| {
                SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok().map(|ski| {
                    AuthorityKeyIdentifier {
                        key_identifier: Some(ski.0),
                        authority_cert_issuer: None,
                        authority_cert_serial_number: None,
                    }
                })
            });
        macro_rules! build {
            ($signer:expr, $sig:ty) => {{
                let mut b = CertificateBuilder::new(
                    Profile::Manual { issuer: Some(issuer) },
                    Self::serial()?,
                    validity,
                    Name::default(),
                    spki,
                    $signer,
                )?;
                b.add_extension(&BasicConstraints { ca: false, path_len_constraint: None })?;
                b.add_extension(&KeyUsage(usage.into()))?;
                b.add_extension(&ExtendedKeyUsage(vec![TCG_KP_EK_CERTIFICATE]))?;
                b.add_extension(&SubjectAltName(vec![GeneralName::DirectoryName(Self::tpm_name()?)]))?;
                b.add_extension(&Self::tpm_specification()?)?;
                if let Some(aki) = &aki {
                    b.add_extension(aki)?;
                }
                b.build::<$sig>()?.to_der()?
            }};
        }
        let der = match &self.key {
            CaKey::P256(k) => build!(k, p256::ecdsa::DerSignature),
            CaKey::P384(k) => build!(k, p384::ecdsa::DerSignature),
        };
        Ok(der)
    }
}

/// Creates the development CA: a P-256 key (PKCS#8 PEM, 0600, created exclusively) and a self-signed CA
/// certificate naming itself DEVELOPMENT.
fn create_development_ca(cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::str::FromStr as _;

    use p256::pkcs8::EncodePrivateKey as _;
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let spki = SubjectPublicKeyInfoOwned::from_key(*key.verifying_key())?;
    let subject = Name::from_str(&format!("CN={DEV_CA_COMMON_NAME},O=svsm-host development"))?;
    let validity = Validity {
        not_before: Time::try_from(SystemTime::now() - Duration::from_secs(3600))?,
        not_after: Time::INFINITY,
    };
    let builder = CertificateBuilder::new(Profile::Root, CaIssuer::serial()?, validity, subject, spki, &key)?;
    let cert = builder.build::<p256::ecdsa::DerSignature>()?;
    let key_pem = key.to_pkcs8_pem(x509_cert::der::pem::LineEnding::LF)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_path)
        .with_context(|| format!("creating {}", key_path.display()))?;
    f.write_all(key_pem.as_bytes())?;
    f.sync_all()?;
    let cert_pem = x509_cert::der::EncodePem::to_pem(&cert, x509_cert::der::pem::LineEnding::LF)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(cert_path)
        .with_context(|| format!("creating {}", cert_path.display()))?;
    f.write_all(cert_pem.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

impl EkCertIssuer for CaIssuer {
    fn describe(&self) -> CertIssuer {
        let kind = if self.development { "development EK CA" } else { "operator EK CA" };
        CertIssuer {
            development: self.development,
            description: format!(
                "{kind} \"{}\" ({})",
                self.cert.tbs_certificate.subject,
                self.cert_path.display()
            ),
        }
    }

    fn issue(&mut self, kind: EkKind, public: &PublicArea) -> Result<Vec<u8>, String> {
        self.issue_der(kind, public).map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "issuing the EK certificate failed");
            format!("{e:#}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EK issuer and the attestation verifier read a public area with the one codec
    /// (`svsm_vtpm::marshal::PublicArea`): an EK the issuer certifies must come out of the verifier as the
    /// same key, recognised as the same profile EK, with the certificate's key equal to the verifier's.
    #[test]
    fn the_verifier_reads_a_certified_ek_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CaIssuer::development(dir.path()).unwrap();
        let point = p256::SecretKey::from_slice(&[7; 32]).unwrap().public_key().to_sec1_bytes();
        for kind in EkKind::ALL {
            let mut public = kind.template();
            match &mut public.key {
                // Any odd 2048-bit modulus: the certificate and the verifier only encode it.
                PublicKey::Rsa { modulus, .. } => *modulus = vec![0xC3; 256],
                PublicKey::Ecc { x, y, .. } => {
                    *x = point[1..33].to_vec();
                    *y = point[33..65].to_vec();
                }
                other => panic!("EK template of another type: {other:?}"),
            }
            let cert = Certificate::from_der(&ca.issue_der(kind, &public).unwrap()).unwrap();
            let ek = svsm_attest::verify::endorsement_key(&public.marshal().unwrap()).unwrap();
            assert_eq!(ek.public, public, "{kind:?}: the verifier parsed another key");
            assert_eq!(ek.profile, Some(kind), "{kind:?}: the verifier does not see the profile EK");
            let certified = &cert.tbs_certificate.subject_public_key_info;
            assert_eq!(certified, &CaIssuer::spki_of(&ek.public).unwrap());
            if let Some(pem) = &ek.public_key_pem {
                let verifier = SubjectPublicKeyInfoOwned::from_pem(pem.as_bytes()).unwrap();
                assert_eq!(verifier.subject_public_key, certified.subject_public_key);
                assert_eq!(verifier.algorithm.oid, certified.algorithm.oid);
            }
        }
    }
}
