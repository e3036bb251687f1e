//! AMD's SEV-SNP certificate profile: ARK (self-signed) -> ASK -> VCEK.
//!
//! Facts carried over from AMD's KDS specification (57230) and AMD's published Milan chain: ARK and ASK are
//! RSA-4096 keys; every certificate in the chain is signed RSASSA-PSS with SHA-384, MGF1-SHA-384 and a
//! 48-byte salt; the VCEK's key is ECDSA P-384 and the VCEK carries extensions under 1.3.6.1.4.1.3704.1:
//! .1 structVersion, .2 productName (IA5String), .3.1 blSPL, .3.2 teeSPL, .3.3 snpSPL, .3.4-.3.7 reserved
//! SPLs, .3.8 ucodeSPL (INTEGERs), and .4 hwID (the 64-byte CHIP_ID, raw). The same verification code
//! accepts AMD's real chain and the simulated one; only the trust anchor differs.

use std::str::FromStr;
use std::time::Duration;

use der::asn1::{BitString, Ia5StringRef, OctetString, UtcTime};
use der::{Decode, Encode};
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use sha2::Sha384;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::VerifyError;
use crate::policy::VerifierPolicy;

/// RSASSA-PSS.
pub const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// id-ecPublicKey.
pub const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp384r1.
pub const OID_SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// VCEK structVersion.
pub const OID_STRUCT_VERSION: &str = "1.3.6.1.4.1.3704.1.1";
/// VCEK productName.
pub const OID_PRODUCT_NAME: &str = "1.3.6.1.4.1.3704.1.2";
/// VCEK blSPL.
pub const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
/// VCEK teeSPL.
pub const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
/// VCEK snpSPL.
pub const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
/// VCEK ucodeSPL.
pub const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
/// VCEK hwID.
pub const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";

/// PSS salt length in AMD's profile (the SHA-384 output size).
const PSS_SALT_LEN: usize = 48;

/// A TCB as the VCEK extensions and Milan/Genoa reports express it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tcb {
    /// Bootloader SPL.
    pub bootloader: u8,
    /// PSP OS SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

impl Tcb {
    fn as_array(self) -> [u8; 4] {
        [self.bootloader, self.tee, self.snp, self.microcode]
    }
}

fn cert_err(which: &'static str) -> impl Fn(der::Error) -> VerifyError {
    move |e| VerifyError::CertificateParse { which, detail: e.to_string() }
}

/// Parses one DER certificate.
pub fn parse_certificate(which: &'static str, der_bytes: &[u8]) -> Result<Certificate, VerifyError> {
    Certificate::from_der(der_bytes).map_err(cert_err(which))
}

/// Parses every certificate in a PEM bundle, in order.
pub fn parse_pem_bundle(which: &'static str, pem: &str) -> Result<Vec<Certificate>, VerifyError> {
    Certificate::load_pem_chain(pem.as_bytes()).map_err(cert_err(which))
}

/// Checks that `signee` is signed by `signer`'s RSA key with RSASSA-PSS SHA-384 and that the names link.
pub fn verify_pss_signed(
    which: &'static str,
    signer: &Certificate,
    signee: &Certificate,
) -> Result<(), VerifyError> {
    let sig_err = |detail: String| VerifyError::CertificateSignature { which, detail };
    if signee.signature_algorithm.oid != OID_RSASSA_PSS
        || signee.tbs_certificate.signature.oid != OID_RSASSA_PSS
    {
        return Err(sig_err(format!("algorithm {} is not RSASSA-PSS", signee.signature_algorithm.oid)));
    }
    if signee.tbs_certificate.issuer != signer.tbs_certificate.subject {
        return Err(VerifyError::ChainNameMismatch { which });
    }
    let spki_der = signer.tbs_certificate.subject_public_key_info.to_der().map_err(cert_err(which))?;
    let key = <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki_der)
        .map_err(|e| sig_err(format!("issuer key is not RSA: {e}")))?;
    let tbs = signee.tbs_certificate.to_der().map_err(cert_err(which))?;
    let sig =
        rsa::pss::Signature::try_from(signee.signature.raw_bytes()).map_err(|e| sig_err(e.to_string()))?;
    rsa::pss::VerifyingKey::<Sha384>::new(key).verify(&tbs, &sig).map_err(|e| sig_err(e.to_string()))
}

fn extension<'a>(cert: &'a Certificate, oid: &'static str) -> Result<&'a [u8], VerifyError> {
    let want = ObjectIdentifier::new(oid).map_err(|_| VerifyError::VcekExtension { oid })?;
    cert.tbs_certificate
        .extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == want))
        .map(|e| e.extn_value.as_bytes())
        .ok_or(VerifyError::VcekExtension { oid })
}

fn spl(cert: &Certificate, oid: &'static str) -> Result<u8, VerifyError> {
    let raw = extension(cert, oid)?;
    let value = der::asn1::Int::from_der(raw).map_err(|_| VerifyError::VcekExtension { oid })?;
    let bytes = value.as_bytes();
    // A non-negative INTEGER fitting one byte (DER may add a leading zero for values >= 0x80).
    match bytes {
        [b] if *b < 0x80 => Ok(*b),
        [0, b] if *b >= 0x80 => Ok(*b),
        _ => Err(VerifyError::VcekExtension { oid }),
    }
}

/// What the VCEK says about the chip and TCB it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcekClaims {
    /// The TCB the VCEK was derived for.
    pub tcb: Tcb,
    /// The chip's hwID (CHIP_ID).
    pub hw_id: Vec<u8>,
    /// Product name (e.g. "Milan-B0").
    pub product_name: String,
    /// The P-384 key.
    pub key: p384::ecdsa::VerifyingKey,
}

/// Reads the VCEK's extensions and key.
pub fn vcek_claims(vcek: &Certificate) -> Result<VcekClaims, VerifyError> {
    let tcb = Tcb {
        bootloader: spl(vcek, OID_BL_SPL)?,
        tee: spl(vcek, OID_TEE_SPL)?,
        snp: spl(vcek, OID_SNP_SPL)?,
        microcode: spl(vcek, OID_UCODE_SPL)?,
    };
    let hw_id = extension(vcek, OID_HWID)?.to_vec();
    let product_raw = extension(vcek, OID_PRODUCT_NAME)?;
    let product_name = Ia5StringRef::from_der(product_raw)
        .map(|s| s.as_str().to_owned())
        .map_err(|_| VerifyError::VcekExtension { oid: OID_PRODUCT_NAME })?;
    let spki = &vcek.tbs_certificate.subject_public_key_info;
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY || curve != Some(OID_SECP384R1) {
        return Err(VerifyError::VcekKey);
    }
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
        .map_err(|_| VerifyError::VcekKey)?;
    Ok(VcekClaims { tcb, hw_id, product_name, key })
}

/// Verifies ARK (self-signed, must equal the trust anchor) -> ASK -> VCEK and returns the VCEK's claims:
/// signatures, names, validity periods at `policy.time`, CA constraints (ARK and ASK are CAs allowed to sign
/// certificates, the VCEK is not a CA) and revocation against `policy.crls`.
pub fn verify_chain(
    trusted_ark: &Certificate,
    ark: &Certificate,
    ask: &Certificate,
    vcek: &Certificate,
    policy: &VerifierPolicy,
) -> Result<VcekClaims, VerifyError> {
    if ark != trusted_ark {
        return Err(VerifyError::UntrustedRoot);
    }
    verify_pss_signed("ARK", ark, ark)?;
    verify_pss_signed("ASK", ark, ask)?;
    verify_pss_signed("VCEK", ask, vcek)?;
    let now = policy.time.unix_seconds();
    for (which, cert, ca) in [("ARK", ark, true), ("ASK", ask, true), ("VCEK", vcek, false)] {
        check_validity(which, cert, now)?;
        check_constraints(which, cert, ca)?;
    }
    for der_crl in &policy.crls {
        check_crl(der_crl, ark, ask, vcek, now)?;
    }
    vcek_claims(vcek)
}

fn unix(t: &Time) -> u64 {
    t.to_unix_duration().as_secs()
}

/// notBefore <= now <= notAfter.
pub fn check_validity(which: &'static str, cert: &Certificate, now: u64) -> Result<(), VerifyError> {
    let v = &cert.tbs_certificate.validity;
    let (nb, na) = (unix(&v.not_before), unix(&v.not_after));
    if now < nb {
        return Err(VerifyError::CertificateValidity {
            which,
            detail: format!("not valid before {} (check time {now}, Unix seconds)", v.not_before),
        });
    }
    if now > na {
        return Err(VerifyError::CertificateValidity {
            which,
            detail: format!("expired at {} (check time {now}, Unix seconds)", v.not_after),
        });
    }
    Ok(())
}

fn decoded_extension<'a, T: Decode<'a>>(
    cert: &'a Certificate,
    oid: ObjectIdentifier,
    which: &'static str,
) -> Result<Option<T>, VerifyError> {
    let Some(exts) = cert.tbs_certificate.extensions.as_ref() else { return Ok(None) };
    let mut found = exts.iter().filter(|e| e.extn_id == oid);
    let Some(e) = found.next() else { return Ok(None) };
    if found.next().is_some() {
        return Err(VerifyError::CaConstraints { which, detail: "extension present twice" });
    }
    T::from_der(e.extn_value.as_bytes())
        .map(Some)
        .map_err(|_| VerifyError::CaConstraints { which, detail: "malformed BasicConstraints or KeyUsage" })
}

const OID_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

/// A CA (ARK, ASK) must say so in BasicConstraints and, if it has KeyUsage, allow keyCertSign; a leaf (VCEK)
/// must not be a CA nor allowed to sign certificates.
pub fn check_constraints(which: &'static str, cert: &Certificate, ca: bool) -> Result<(), VerifyError> {
    let bc: Option<BasicConstraints> = decoded_extension(cert, OID_BASIC_CONSTRAINTS, which)?;
    let ku: Option<KeyUsage> = decoded_extension(cert, OID_KEY_USAGE, which)?;
    let err = |detail| Err(VerifyError::CaConstraints { which, detail });
    if ca {
        if !bc.is_some_and(|b| b.ca) {
            return err("a CA certificate without BasicConstraints cA=TRUE");
        }
        if ku.is_some_and(|k| !k.key_cert_sign()) {
            return err("a CA certificate whose KeyUsage does not allow keyCertSign");
        }
    } else {
        if bc.is_some_and(|b| b.ca) {
            return err("the VCEK claims to be a CA");
        }
        if ku.is_some_and(|k| k.key_cert_sign()) {
            return err("the VCEK's KeyUsage allows keyCertSign");
        }
    }
    Ok(())
}

/// Checks one CRL: issued (and RSASSA-PSS SHA-384 signed) by the ARK or the ASK, current at `now`, and not
/// listing the certificate that issuer signed (ASK for the ARK's CRL, VCEK for the ASK's).
fn check_crl(
    der_crl: &[u8],
    ark: &Certificate,
    ask: &Certificate,
    vcek: &Certificate,
    now: u64,
) -> Result<(), VerifyError> {
    let crl = CertificateList::from_der(der_crl).map_err(|e| VerifyError::Crl(format!("not DER: {e}")))?;
    let tbs = &crl.tbs_cert_list;
    let (issuer, subject, which) = if tbs.issuer == ark.tbs_certificate.subject {
        (ark, ask, "ASK")
    } else if tbs.issuer == ask.tbs_certificate.subject {
        (ask, vcek, "VCEK")
    } else {
        return Err(VerifyError::Crl("issued by neither the ARK nor the ASK of this chain".into()));
    };
    if crl.signature_algorithm.oid != OID_RSASSA_PSS || tbs.signature.oid != OID_RSASSA_PSS {
        return Err(VerifyError::Crl("signature algorithm is not RSASSA-PSS".into()));
    }
    let spki_der = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| VerifyError::Crl(e.to_string()))?;
    let key = <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki_der)
        .map_err(|e| VerifyError::Crl(format!("issuer key is not RSA: {e}")))?;
    let tbs_der = tbs.to_der().map_err(|e| VerifyError::Crl(e.to_string()))?;
    let sig = rsa::pss::Signature::try_from(crl.signature.raw_bytes())
        .map_err(|e| VerifyError::Crl(format!("signature: {e}")))?;
    rsa::pss::VerifyingKey::<Sha384>::new(key)
        .verify(&tbs_der, &sig)
        .map_err(|_| VerifyError::Crl("signature does not verify under its issuer's key".into()))?;
    if unix(&tbs.this_update) > now {
        return Err(VerifyError::Crl(format!("thisUpdate {} is after the check time", tbs.this_update)));
    }
    if let Some(next) = &tbs.next_update
        && unix(next) < now
    {
        return Err(VerifyError::Crl(format!("stale: nextUpdate {next} has passed; fetch a current CRL")));
    }
    let serial = &subject.tbs_certificate.serial_number;
    if tbs.revoked_certificates.iter().flatten().any(|r| &r.serial_number == serial) {
        return Err(VerifyError::Revoked { which });
    }
    Ok(())
}

/// The simulated AMD root and signing keys with their certificates.
#[derive(Debug, Clone)]
pub struct SimulatedRoots {
    ark_key: rsa::RsaPrivateKey,
    ask_key: rsa::RsaPrivateKey,
    /// ARK certificate (self-signed).
    pub ark: Certificate,
    /// ASK certificate (signed by the ARK).
    pub ask: Certificate,
    product: String,
}

fn amd_name(cn: &str) -> Result<Name, der::Error> {
    // RFC 4514 order (last RDN first); marked as simulated so it can never pass for AMD's.
    Name::from_str(&format!(
        "CN={cn},O=Advanced Micro Devices (simulated by svsm-stack),ST=CA,L=Santa Clara,C=US,OU=Engineering"
    ))
}

fn validity() -> Result<Validity, der::Error> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let start = now.saturating_sub(Duration::from_secs(86_400));
    // UTCTime reaches 2049; AMD's roots are valid for 25 years.
    let end = (start + Duration::from_secs(25 * 365 * 86_400)).min(Duration::from_secs(2_524_607_999));
    Ok(Validity {
        not_before: Time::UtcTime(UtcTime::from_unix_duration(start)?),
        not_after: Time::UtcTime(UtcTime::from_unix_duration(end)?),
    })
}

fn ext(oid: &str, critical: bool, value: Vec<u8>) -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: ObjectIdentifier::new_unwrap(oid),
        critical,
        extn_value: OctetString::new(value)?,
    })
}

/// Signs a TBS certificate RSASSA-PSS SHA-384 (salt 48) with `key` (also for tests that forge chains).
pub fn sign_pss(
    key: &rsa::RsaPrivateKey,
    mut tbs: x509_cert::TbsCertificate,
    rng: &mut (impl rand::CryptoRng + rand::RngCore),
) -> Result<Certificate, Box<dyn std::error::Error + Send + Sync>> {
    let signer = rsa::pss::SigningKey::<Sha384>::new_with_salt_len(key.clone(), PSS_SALT_LEN);
    let alg = spki::DynSignatureAlgorithmIdentifier::signature_algorithm_identifier(&signer)?;
    tbs.signature = alg.clone();
    let sig = signer.try_sign_with_rng(rng, &tbs.to_der()?)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&sig.to_bytes())?,
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn tbs(
    serial: u8,
    issuer: Name,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    extensions: Vec<Extension>,
) -> Result<x509_cert::TbsCertificate, BoxError> {
    Ok(x509_cert::TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: SerialNumber::new(&[serial])?,
        // Replaced by the signer's PSS parameters in `sign_pss`.
        signature: spki::AlgorithmIdentifierOwned { oid: OID_RSASSA_PSS, parameters: None },
        issuer,
        validity: validity()?,
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    })
}

fn rsa_spki(key: &rsa::RsaPrivateKey) -> Result<SubjectPublicKeyInfoOwned, BoxError> {
    Ok(SubjectPublicKeyInfoOwned::from_der(key.to_public_key().to_public_key_der()?.as_bytes())?)
}

fn ca_extensions() -> Result<Vec<Extension>, BoxError> {
    Ok(vec![
        ext("2.5.29.15", true, KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign).to_der()?)?,
        ext("2.5.29.19", true, BasicConstraints { ca: true, path_len_constraint: None }.to_der()?)?,
    ])
}

impl SimulatedRoots {
    /// Generates RSA-4096 ARK and ASK keys and their certificates for `product` (e.g. "Milan").
    pub fn generate(
        product: &str,
        rng: &mut (impl rand::CryptoRng + rand::RngCore),
    ) -> Result<Self, BoxError> {
        let ark_key = rsa::RsaPrivateKey::new(rng, 4096)?;
        let ask_key = rsa::RsaPrivateKey::new(rng, 4096)?;
        let ark_name = amd_name(&format!("ARK-{product}"))?;
        let ask_name = amd_name(&format!("SEV-{product}"))?;
        let ark = sign_pss(
            &ark_key,
            tbs(1, ark_name.clone(), ark_name.clone(), rsa_spki(&ark_key)?, ca_extensions()?)?,
            rng,
        )?;
        let ask =
            sign_pss(&ark_key, tbs(2, ark_name, ask_name, rsa_spki(&ask_key)?, ca_extensions()?)?, rng)?;
        Ok(SimulatedRoots { ark_key, ask_key, ark, ask, product: product.to_owned() })
    }

    /// Roots from stored parts (a persistent simulated platform identity): the keys and the certificates
    /// [`SimulatedRoots::generate`] made for `product`. Checks that each certificate carries its key.
    pub fn from_parts(
        ark_key: rsa::RsaPrivateKey,
        ark: Certificate,
        ask_key: rsa::RsaPrivateKey,
        ask: Certificate,
        product: &str,
    ) -> Result<Self, BoxError> {
        for (which, key, cert) in [("ARK", &ark_key, &ark), ("ASK", &ask_key, &ask)] {
            if rsa_spki(key)? != cert.tbs_certificate.subject_public_key_info {
                return Err(format!("the {which} certificate does not carry the {which} key").into());
            }
        }
        Ok(SimulatedRoots { ark_key, ask_key, ark, ask, product: product.to_owned() })
    }

    /// The product name the roots were made for (e.g. "Milan").
    pub fn product(&self) -> &str {
        &self.product
    }

    /// Issues a VCEK certificate for `key`, `tcb` and `hw_id` (64 bytes), signed by the ASK.
    pub fn issue_vcek(
        &self,
        key: &p384::ecdsa::VerifyingKey,
        tcb: Tcb,
        hw_id: &[u8; 64],
        rng: &mut (impl rand::CryptoRng + rand::RngCore),
    ) -> Result<Certificate, BoxError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(key.to_public_key_der()?.as_bytes())?;
        let int = |v: u8| -> Result<Vec<u8>, der::Error> { u32::from(v).to_der() };
        let extensions = vec![
            ext(OID_STRUCT_VERSION, false, 1u32.to_der()?)?,
            ext(OID_PRODUCT_NAME, false, Ia5StringRef::new(&format!("{}-B0", self.product))?.to_der()?)?,
            ext(OID_BL_SPL, false, int(tcb.bootloader)?)?,
            ext(OID_TEE_SPL, false, int(tcb.tee)?)?,
            ext(OID_SNP_SPL, false, int(tcb.snp)?)?,
            ext("1.3.6.1.4.1.3704.1.3.4", false, int(0)?)?,
            ext("1.3.6.1.4.1.3704.1.3.5", false, int(0)?)?,
            ext("1.3.6.1.4.1.3704.1.3.6", false, int(0)?)?,
            ext("1.3.6.1.4.1.3704.1.3.7", false, int(0)?)?,
            ext(OID_UCODE_SPL, false, int(tcb.microcode)?)?,
            ext(OID_HWID, false, hw_id.to_vec())?,
        ];
        let issuer = self.ask.tbs_certificate.subject.clone();
        sign_pss(&self.ask_key, tbs(3, issuer, amd_name("SEV-VCEK")?, spki, extensions)?, rng)
    }

    /// The ARK's private key is never needed after generation except to re-sign; exposed for tests that
    /// forge chains.
    pub fn ark_key(&self) -> &rsa::RsaPrivateKey {
        &self.ark_key
    }

    /// The ASK's private key; exposed for tests that forge VCEKs.
    pub fn ask_key(&self) -> &rsa::RsaPrivateKey {
        &self.ask_key
    }

    /// Issues a CRL as AMD's KDS does (RSASSA-PSS SHA-384), by the ARK (`by_ask == false`, revoking ASKs) or
    /// the ASK (revoking VCEKs), valid from a day ago for `valid_secs`, listing `revoked` serials.
    pub fn issue_crl(
        &self,
        by_ask: bool,
        revoked: &[SerialNumber],
        valid_secs: u64,
        rng: &mut (impl rand::CryptoRng + rand::RngCore),
    ) -> Result<Vec<u8>, BoxError> {
        let (key, issuer) = if by_ask {
            (&self.ask_key, self.ask.tbs_certificate.subject.clone())
        } else {
            (&self.ark_key, self.ark.tbs_certificate.subject.clone())
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let this = now.saturating_sub(Duration::from_secs(86_400));
        let next = this + Duration::from_secs(86_400 + valid_secs);
        let this_update = Time::UtcTime(UtcTime::from_unix_duration(this)?);
        let revoked_certificates = (!revoked.is_empty()).then(|| {
            revoked
                .iter()
                .map(|s| RevokedCert {
                    serial_number: s.clone(),
                    revocation_date: this_update,
                    crl_entry_extensions: None,
                })
                .collect()
        });
        let mut tbs = TbsCertList {
            version: x509_cert::Version::V2,
            signature: spki::AlgorithmIdentifierOwned { oid: OID_RSASSA_PSS, parameters: None },
            issuer,
            this_update,
            next_update: Some(Time::UtcTime(UtcTime::from_unix_duration(next)?)),
            revoked_certificates,
            crl_extensions: None,
        };
        let signer = rsa::pss::SigningKey::<Sha384>::new_with_salt_len(key.clone(), PSS_SALT_LEN);
        let alg = spki::DynSignatureAlgorithmIdentifier::signature_algorithm_identifier(&signer)?;
        tbs.signature = alg.clone();
        let sig = signer.try_sign_with_rng(rng, &tbs.to_der()?)?;
        let crl = CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: alg,
            signature: BitString::from_bytes(&sig.to_bytes())?,
        };
        Ok(crl.to_der()?)
    }
}

/// The (bl, tee, snp, ucode) array of a TCB, for error reports.
pub fn tcb_array(tcb: Tcb) -> [u8; 4] {
    tcb.as_array()
}
