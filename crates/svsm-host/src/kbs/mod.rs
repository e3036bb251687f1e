//! [`KbsKeySource`]: volume keys derived from a secret a KBS released after attestation, fetched through the
//! host proxy (`svsm-host kbs-proxy`), with bounded retries.
//!
//! On this host the evidence comes from the *simulated* SNP platform, so the released key is labelled
//! development-only: only a KBS that trusts the simulated ARK (the test double) accepts that evidence.

use std::sync::Mutex;
use std::time::Duration;

use svsm_kbs::keys::{Purpose, derive_volume_key};
use svsm_kbs::stream::{AnyChannel, ProxyAddress};
use svsm_kbs::{ClientConfig, EvidenceProvider, KbsError, ReleasedSecret};
use svsm_store::StoreKey;

use crate::state::{KeyOrigin, KeyRequest, KeySource, StateError, VolumeKey, VolumeName};

pub mod admin;
pub mod platform;

/// How often and how patiently to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub first_delay: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
    /// Time bound of each channel read/write.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Keys from an attested release (see the module docs).
pub struct KbsKeySource {
    proxy: ProxyAddress,
    config: ClientConfig,
    retry: RetryPolicy,
    simulated: bool,
    platform: Mutex<Box<dyn EvidenceProvider + Send>>,
    /// One release per process: every volume's key derives from the same secret.
    secret: Mutex<Option<ReleasedSecret>>,
}

impl std::fmt::Debug for KbsKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The purpose a volume's key is derived for: one per service, so the vTPM's and the UEFI variable store's
/// keys differ even from the same secret.
pub fn purpose_of(volume: &VolumeName) -> Purpose {
    if *volume == VolumeName::UEFI_VARS { Purpose::UefiVarStore } else { Purpose::VtpmStore }
}

/// What to tell the operator after a final failure.
fn hint(e: &KbsError) -> &'static str {
    match e {
        KbsError::Kbs { kind, .. } if kind == "PolicyDeny" => {
            "the KBS's resource policy refused this SVSM: check the reference values (measurement, VMPL, debug, TCB) registered for the resource"
        }
        KbsError::Kbs { kind, .. } if kind == "AttestationError" => {
            "the KBS rejected the attestation; its log names the reason (evidence, REPORT_DATA binding, nonce, VMPL)"
        }
        KbsError::Kbs { kind, .. } if kind == "PluginInternalError" || kind == "ResourceNotFound" => {
            "the resource may not exist at the KBS: register it with `svsm-host kbs provision`"
        }
        KbsError::Channel(_) | KbsError::Proxy { .. } => {
            "check that `svsm-host kbs-proxy` runs on that socket and can reach the KBS"
        }
        KbsError::Jwe(_) | KbsError::Frame(_) | KbsError::UnexpectedReply { .. } => {
            "the host path altered the exchange; nothing was accepted"
        }
        _ => "see the error above",
    }
}

impl KbsKeySource {
    /// A source releasing `resource` through the proxy at `proxy`, with evidence from `platform`.
    /// `simulated`: the evidence is from the simulated SNP platform (keys are then development-only).
    pub fn new(
        proxy: ProxyAddress,
        resource: &str,
        platform: Box<dyn EvidenceProvider + Send>,
        simulated: bool,
        retry: RetryPolicy,
    ) -> Self {
        KbsKeySource {
            proxy,
            config: ClientConfig::new(resource),
            retry,
            simulated,
            platform: Mutex::new(platform),
            secret: Mutex::new(None),
        }
    }

    /// Releases the secret, retrying transient failures with exponential backoff.
    pub fn release(&self) -> Result<ReleasedSecret, (KbsError, u32)> {
        let mut platform = self.platform.lock().unwrap_or_else(|p| p.into_inner());
        let mut delay = self.retry.first_delay;
        let attempts = self.retry.attempts.max(1);
        for attempt in 1..=attempts {
            let result = AnyChannel::connect(&self.proxy, self.retry.timeout).and_then(|mut channel| {
                svsm_kbs::release(&mut channel, &mut **platform, &self.config, &mut rand::rngs::OsRng)
            });
            match result {
                Ok(secret) => {
                    tracing::info!(attempt, resource = %self.config.resource, "KBS released the secret");
                    return Ok(secret);
                }
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "key release failed; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.retry.max_delay);
                }
                Err(e) => return Err((e, attempt)),
            }
        }
        Err((KbsError::State("no attempt made"), 0))
    }
}

impl KeySource for KbsKeySource {
    fn volume_key(&self, volume: &VolumeName, _request: KeyRequest) -> Result<VolumeKey, StateError> {
        // Existing and new volumes get the same derived key: the provisioned secret decides, never this call.
        let mut cached = self.secret.lock().unwrap_or_else(|p| p.into_inner());
        if cached.is_none() {
            let secret = self.release().map_err(|(e, attempts)| StateError::KeyUnavailable {
                volume: volume.to_string(),
                source_name: self.describe(),
                reason: format!("{e} (after {attempts} attempt(s)); {}", hint(&e)),
            })?;
            *cached = Some(secret);
        }
        let secret = cached.as_ref().ok_or_else(|| StateError::KeyUnavailable {
            volume: volume.to_string(),
            source_name: self.describe(),
            reason: "no secret".into(),
        })?;
        let key = derive_volume_key(secret, volume.as_str().as_bytes(), purpose_of(volume));
        let source = format!("KBS resource {} via {}", self.config.resource, self.proxy);
        let origin = if self.simulated {
            KeyOrigin::Development { source: format!("{source}, released on SIMULATED SNP evidence") }
        } else {
            KeyOrigin::Attested { source }
        };
        Ok(VolumeKey { key: StoreKey::from_bytes(*key), origin })
    }

    fn describe(&self) -> String {
        format!(
            "KBS resource {} through the proxy at {}{}",
            self.config.resource,
            self.proxy,
            if self.simulated { " (simulated SNP evidence: development only)" } else { "" }
        )
    }
}

/// Keys derived from a secret held here, while provisioning: the same derivation [`KbsKeySource`] applies to
/// the released secret, so the volumes formatted now open later only with the secret the KBS releases.
pub struct ProvisionedKeys {
    secret: ReleasedSecret,
    resource: String,
}

impl std::fmt::Debug for ProvisionedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl ProvisionedKeys {
    /// Keys from `secret`, the content registered as KBS resource `resource`.
    pub fn new(secret: ReleasedSecret, resource: &str) -> Self {
        ProvisionedKeys { secret, resource: resource.to_string() }
    }
}

impl KeySource for ProvisionedKeys {
    fn volume_key(&self, volume: &VolumeName, _request: KeyRequest) -> Result<VolumeKey, StateError> {
        let key = derive_volume_key(&self.secret, volume.as_str().as_bytes(), purpose_of(volume));
        Ok(VolumeKey {
            key: StoreKey::from_bytes(*key),
            origin: KeyOrigin::Development {
                source: format!("provisioning secret for KBS resource {}", self.resource),
            },
        })
    }

    fn describe(&self) -> String {
        format!(
            "provisioning secret for KBS resource {} (held in memory only while provisioning)",
            self.resource
        )
    }
}
