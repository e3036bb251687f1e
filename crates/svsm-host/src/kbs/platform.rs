//! The persistent **simulated** SNP platform identity of a state directory: the simulated AMD roots (ARK,
//! ASK) and the VCEK key, created once and loaded on every start, so a KBS (the test double) can be
//! configured once to trust this host's simulated ARK.
//!
//! DEVELOPMENT ONLY. The file holds the simulated roots' *private* keys: whoever reads it can sign reports
//! for any measurement. It proves nothing about hardware and no real KBS trusts it; it exists because a host
//! without SEV-SNP has no AMD-signed reports to offer. It is created 0600 and refused if others can read it.
//!
//! File format (`simulated-snp-platform.pem`): `#` comment lines naming what it is, then five PEM blocks in
//! this order: ARK key (`PRIVATE KEY`, PKCS#8), ARK certificate, ASK key, ASK certificate, VCEK key
//! (`PRIVATE KEY`, PKCS#8 P-384). The VCEK certificate is re-issued by the ASK on every load for the
//! configured TCB and chip (as AMD's KDS would issue one per TCB).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use der::pem::LineEnding;
use der::{Decode as _, Encode as _, EncodePem as _};
use p384::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use svsm_attest::chain::SimulatedRoots;
use svsm_attest::{SimulatedSnp, SimulatedSnpConfig};
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// The file name in a state directory.
pub const PLATFORM_FILE: &str = "simulated-snp-platform.pem";
/// Where the simulated ARK (public, the trust anchor a KBS double is configured with) is written beside it.
pub const ARK_FILE: &str = "simulated-ark.pem";

const HEADER: &str = "\
# DEVELOPMENT ONLY: the simulated AMD SEV-SNP platform identity of this state directory.\n\
# These are NOT AMD's keys; no real KBS trusts them. They hold the private keys of the simulated roots:\n\
# anyone who reads this file can forge reports for this simulated platform. Keep it 0600.\n\
# Blocks: ARK key, ARK certificate, ASK key, ASK certificate, VCEK key (svsm-host kbs platform format v1).\n";

/// The simulated roots and VCEK key (see the module docs).
pub struct SimulatedPlatformIdentity {
    roots: Arc<SimulatedRoots>,
    vcek_key: p384::ecdsa::SigningKey,
}

impl std::fmt::Debug for SimulatedPlatformIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimulatedPlatformIdentity({})", self.roots.product())
    }
}

fn pem_blocks(text: &str) -> anyhow::Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let end_marker = after.find("-----END ").context("a PEM block has no END line")?;
        let line_end = after[end_marker..].find('\n').map(|i| end_marker + i + 1).unwrap_or(after.len());
        let (label, der) = der::pem::decode_vec(&after.as_bytes()[..line_end])
            .map_err(|e| anyhow::anyhow!("bad PEM block: {e}"))?;
        blocks.push((label.to_string(), Zeroizing::new(der)));
        rest = &after[line_end..];
    }
    Ok(blocks)
}

impl SimulatedPlatformIdentity {
    /// Generates new roots (RSA-4096, a few seconds) and a VCEK key.
    pub fn generate() -> anyhow::Result<Self> {
        let mut rng = rand::rngs::OsRng;
        let roots = SimulatedRoots::generate("Milan", &mut rng).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(SimulatedPlatformIdentity {
            roots: Arc::new(roots),
            vcek_key: p384::ecdsa::SigningKey::random(&mut rng),
        })
    }

    /// The simulated roots.
    pub fn roots(&self) -> Arc<SimulatedRoots> {
        self.roots.clone()
    }

    /// The simulated ARK certificate as PEM (what a KBS double is configured to trust).
    pub fn ark_pem(&self) -> anyhow::Result<String> {
        self.roots.ark.to_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A simulated SNP platform reporting `config`, signing with this identity's VCEK key.
    pub fn platform(&self, config: SimulatedSnpConfig) -> anyhow::Result<SimulatedSnp> {
        SimulatedSnp::with_vcek_key(self.roots.clone(), self.vcek_key.clone(), config, &mut rand::rngs::OsRng)
            .map_err(|e| anyhow::anyhow!("issuing the simulated VCEK: {e}"))
    }

    /// Writes the identity to `path` (which must not exist), mode 0600, and the public ARK beside it.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("encoding the simulated platform: {e}");
        let key_pem = |der: &[u8]| -> anyhow::Result<Zeroizing<String>> {
            der::pem::encode_string("PRIVATE KEY", LineEnding::LF, der)
                .map(Zeroizing::new)
                .map_err(|e| err(&e))
        };
        let rsa_der = |k: &rsa::RsaPrivateKey| -> anyhow::Result<Zeroizing<Vec<u8>>> {
            Ok(Zeroizing::new(
                rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(k).map_err(|e| err(&e))?.as_bytes().to_vec(),
            ))
        };
        let mut text = Zeroizing::new(String::from(HEADER));
        text.push_str(&key_pem(&rsa_der(self.roots.ark_key())?)?);
        text.push_str(&self.roots.ark.to_pem(LineEnding::LF).map_err(|e| err(&e))?);
        text.push_str(&key_pem(&rsa_der(self.roots.ask_key())?)?);
        text.push_str(&self.roots.ask.to_pem(LineEnding::LF).map_err(|e| err(&e))?);
        let vcek = self.vcek_key.to_pkcs8_der().map_err(|e| err(&e))?;
        text.push_str(&key_pem(vcek.as_bytes())?);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all())?;
        if let Some(dir) = path.parent() {
            std::fs::write(dir.join(ARK_FILE), self.ark_pem()?)
                .with_context(|| format!("writing {}", dir.join(ARK_FILE).display()))?;
        }
        Ok(())
    }

    /// Loads the identity from `path`; refuses a file others can read or that is not in this format.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let meta = std::fs::metadata(path).with_context(|| {
            format!(
                "no simulated platform identity at {} (`svsm-host kbs provision` creates one; or name it with \
                 --sim-platform)",
                path.display()
            )
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {:o}); it holds private keys: chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let bad =
            |what: &str| anyhow::anyhow!("{} is not a simulated platform identity: {what}", path.display());
        let blocks = pem_blocks(&text).map_err(|e| bad(&e.to_string()))?;
        let labels: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
        if labels != ["PRIVATE KEY", "CERTIFICATE", "PRIVATE KEY", "CERTIFICATE", "PRIVATE KEY"] {
            return Err(bad(&format!("expected 5 blocks (key, cert, key, cert, key), found {labels:?}")));
        }
        let rsa_key = |der: &[u8], which: &str| {
            <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                .map_err(|e| bad(&format!("{which} key: {e}")))
        };
        let cert = |der: &[u8], which: &str| {
            Certificate::from_der(der).map_err(|e| bad(&format!("{which} certificate: {e}")))
        };
        let ark_key = rsa_key(&blocks[0].1, "ARK")?;
        let ark = cert(&blocks[1].1, "ARK")?;
        let ask_key = rsa_key(&blocks[2].1, "ASK")?;
        let ask = cert(&blocks[3].1, "ASK")?;
        let vcek_key = p384::ecdsa::SigningKey::from_pkcs8_der(&blocks[4].1)
            .map_err(|e| bad(&format!("VCEK key: {e}")))?;
        // The product is in the ARK's name: CN=ARK-<product>.
        let product = ark
            .tbs_certificate
            .subject
            .to_string()
            .split(',')
            .find_map(|rdn| rdn.trim().strip_prefix("CN=ARK-").map(str::to_string))
            .ok_or_else(|| bad("the ARK certificate does not name a product (CN=ARK-...)"))?;
        let _ = ark.to_der().map_err(|e| bad(&e.to_string()))?;
        let roots = SimulatedRoots::from_parts(ark_key, ark, ask_key, ask, &product)
            .map_err(|e| bad(&e.to_string()))?;
        Ok(SimulatedPlatformIdentity { roots: Arc::new(roots), vcek_key })
    }

    /// Loads the identity at `path`, or creates and saves a new one if there is none. Returns whether it was
    /// created.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Self, bool)> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        eprintln!(
            "creating the DEVELOPMENT-ONLY simulated SNP platform identity {} (RSA-4096 roots; a few seconds)",
            path.display()
        );
        let id = Self::generate()?;
        id.save(path)?;
        Ok((id, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_identity_loads_with_the_same_roots_and_refuses_loose_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(PLATFORM_FILE);
        let (id, created) = SimulatedPlatformIdentity::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# DEVELOPMENT ONLY"), "{text:.80}");
        let (again, created) = SimulatedPlatformIdentity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.roots().ark, id.roots().ark);
        assert_eq!(again.roots().ask, id.roots().ask);
        assert_eq!(again.vcek_key.verifying_key(), id.vcek_key.verifying_key());
        assert_eq!(std::fs::read_to_string(tmp.path().join(ARK_FILE)).unwrap(), id.ark_pem().unwrap());
        // The reloaded identity signs reports that chain to the stored ARK.
        let snp = again.platform(SimulatedSnpConfig::default()).unwrap();
        assert_eq!(snp.roots().ark, id.roots().ark);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SimulatedPlatformIdentity::load(&path).unwrap_err().to_string();
        assert!(e.contains("readable by others"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A truncated file is a precise error, not a new identity.
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let e = SimulatedPlatformIdentity::load(&path).unwrap_err().to_string();
        assert!(e.contains("not a simulated platform identity"), "{e}");
    }

    /// The identity file is a state file the host could damage: every truncation and a spread of byte flips is
    /// an error or a load, never a panic, and no truncation is accepted.
    #[test]
    fn damaged_identity_files_never_panic_and_truncations_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(PLATFORM_FILE);
        SimulatedPlatformIdentity::load_or_create(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let damaged = tmp.path().join("damaged.pem");
        let try_load = |bytes: &[u8]| {
            let _ = std::fs::remove_file(&damaged);
            std::fs::write(&damaged, bytes).unwrap();
            std::fs::set_permissions(&damaged, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::panic::catch_unwind(|| SimulatedPlatformIdentity::load(&damaged).map(|_| ()))
                .expect("loading a damaged identity file panicked")
        };
        let step = good.len() / 40;
        for cut in (0..good.len() - 1).step_by(step) {
            assert!(try_load(&good[..cut]).is_err(), "a file truncated to {cut} bytes was accepted");
        }
        let mut flips = 0;
        for at in (0..good.len()).step_by(step / 3 + 1) {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            let _ = try_load(&bad);
            flips += 1;
        }
        assert!(flips > 100, "only {flips} flips tried");
    }
}
