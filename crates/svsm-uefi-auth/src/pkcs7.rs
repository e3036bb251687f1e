//! Verifying the PKCS#7 `SignedData` of a time-based authenticated write (UEFI 2.10 §8.2.2) against the keys
//! allowed to authorise it.
//!
//! Accepted: DER `SignedData`, bare (as the spec defines `CertData`) or wrapped in a `ContentInfo` (as
//! OpenSSL-based tools such as `sbvarsign` emit it); detached content (or embedded content equal to the signed
//! bytes); exactly one `SignerInfo`, SHA-256 digest, RSA PKCS#1 v1.5 signature of at least 2048 bits, with or
//! without signed attributes (with them, `messageDigest` must match). The signer's certificate must be a trusted
//! key itself or chain to one through certificates in the `SignedData`, each link an RSA PKCS#1 v1.5 signature
//! with SHA-256/384/512. Validity periods and extensions are not checked: the firmware has no trusted clock, and
//! UEFI implementations treat PK/KEK entries as trust anchors regardless of them.

use alloc::vec::Vec;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;

use crate::error::AuthError;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// Longest certificate chain followed from the signer to a trusted key.
const MAX_CHAIN: usize = 8;
/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The RSA public key of `cert`, or `SignatureAlgorithm` if it has none (or a weak one).
pub fn rsa_key(cert: &Certificate) -> Result<RsaPublicKey, AuthError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(AuthError::SignatureAlgorithm);
    }
    let key = RsaPublicKey::from_pkcs1_der(spki.subject_public_key.raw_bytes())
        .map_err(|_| AuthError::SignatureAlgorithm)?;
    if key.size() * 8 < MIN_RSA_BITS {
        return Err(AuthError::SignatureAlgorithm);
    }
    Ok(key)
}

/// Decodes `der` as a bare `SignedData` or a `ContentInfo` holding one.
pub fn parse_signed_data(der: &[u8]) -> Result<SignedData, AuthError> {
    if let Ok(info) = ContentInfo::from_der(der) {
        if info.content_type != ID_SIGNED_DATA {
            return Err(AuthError::Pkcs7Malformed("ContentInfo does not hold signedData"));
        }
        return info
            .content
            .decode_as::<SignedData>()
            .map_err(|_| AuthError::Pkcs7Malformed("bad SignedData"));
    }
    SignedData::from_der(der).map_err(|_| AuthError::Pkcs7Malformed("neither DER SignedData nor ContentInfo"))
}

/// Checks that `pkcs7` is a valid signature over `signed` by a certificate that is, or chains to, one of
/// `anchors`.
pub fn verify(pkcs7: &[u8], signed: &[u8], anchors: &[Certificate]) -> Result<(), AuthError> {
    if anchors.is_empty() {
        return Err(AuthError::NoTrustAnchor);
    }
    let sd = parse_signed_data(pkcs7)?;
    if !sd.digest_algorithms.iter().any(|a| a.oid == ID_SHA256) {
        return Err(AuthError::DigestAlgorithm);
    }
    if let Some(content) = &sd.encap_content_info.econtent {
        let embedded =
            content.decode_as::<OctetString>().map_err(|_| AuthError::Pkcs7Malformed("eContent"))?;
        if embedded.as_bytes() != signed {
            return Err(AuthError::BadSignature);
        }
    }
    let mut signers = sd.signer_infos.0.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(AuthError::Pkcs7Malformed("need exactly one SignerInfo"));
    };
    if si.digest_alg.oid != ID_SHA256 {
        return Err(AuthError::DigestAlgorithm);
    }
    if si.signature_algorithm.oid != RSA_ENCRYPTION && si.signature_algorithm.oid != SHA256_WITH_RSA {
        return Err(AuthError::SignatureAlgorithm);
    }
    let bag: Vec<&Certificate> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(cert) => Some(cert),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let signer = bag
        .iter()
        .copied()
        .chain(anchors.iter())
        .find(|c| identifies(&si.sid, c))
        .ok_or(AuthError::SignerNotFound)?;
    let key = rsa_key(signer)?;

    let content_digest = Sha256::digest(signed);
    let to_verify = match &si.signed_attrs {
        None => content_digest,
        Some(attrs) => {
            let digest_attr =
                attrs.iter().find(|a| a.oid == MESSAGE_DIGEST).ok_or(AuthError::BadSignature)?;
            let mut values = digest_attr.values.iter();
            let (Some(value), None) = (values.next(), values.next()) else {
                return Err(AuthError::Pkcs7Malformed("messageDigest needs one value"));
            };
            let claimed =
                value.decode_as::<OctetString>().map_err(|_| AuthError::Pkcs7Malformed("messageDigest"))?;
            if claimed.as_bytes() != content_digest.as_slice() {
                return Err(AuthError::BadSignature);
            }
            let der = attrs.to_der().map_err(|_| AuthError::Pkcs7Malformed("signed attributes"))?;
            Sha256::digest(der)
        }
    };
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &to_verify, si.signature.as_bytes())
        .map_err(|_| AuthError::BadSignature)?;
    chain_to_anchor(signer, &bag, anchors)
}

/// True when `cert` is the one `sid` names.
fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            cert.tbs_certificate.issuer == ias.issuer
                && cert.tbs_certificate.serial_number == ias.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            cert.tbs_certificate.extensions.iter().flatten().filter(|e| e.extn_id == SUBJECT_KEY_ID).any(
                |e| {
                    OctetString::from_der(e.extn_value.as_bytes())
                        .is_ok_and(|v| v.as_bytes() == ski.0.as_bytes())
                },
            )
        }
    }
}

/// Checks that `child`'s signature was made by `issuer`'s key.
fn issued_by(child: &Certificate, issuer: &Certificate) -> bool {
    if child.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return false;
    }
    let Ok(key) = rsa_key(issuer) else { return false };
    let Ok(tbs) = child.tbs_certificate.to_der() else { return false };
    let Some(sig) = child.signature.as_bytes() else { return false };
    let oid = child.signature_algorithm.oid;
    let result = if oid == SHA256_WITH_RSA {
        key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&tbs), sig)
    } else if oid == SHA384_WITH_RSA {
        key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(&tbs), sig)
    } else if oid == SHA512_WITH_RSA {
        key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(&tbs), sig)
    } else {
        return false;
    };
    result.is_ok()
}

/// Follows issuers from `signer` through `bag` until a certificate that is one of `anchors`, or is issued by
/// one, is reached.
fn chain_to_anchor(
    signer: &Certificate,
    bag: &[&Certificate],
    anchors: &[Certificate],
) -> Result<(), AuthError> {
    let mut current = signer;
    for _ in 0..MAX_CHAIN {
        if anchors.iter().any(|a| a == current) || anchors.iter().any(|a| issued_by(current, a)) {
            return Ok(());
        }
        let next = bag.iter().copied().find(|c| *c != current && issued_by(current, c));
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    Err(AuthError::UntrustedSigner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [&[][..], &[0x30, 0x00], &[0x30, 0x80, 0x00, 0x00], &[0xff; 64]] {
            assert!(matches!(parse_signed_data(input), Err(AuthError::Pkcs7Malformed(_))));
        }
    }
}
