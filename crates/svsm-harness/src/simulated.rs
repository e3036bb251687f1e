//! An SVSM for the harness on the simulated SNP platform, with the memory layout both sides agree on.
//!
//! The vTPM behind it is `svsm_protocol::doubles::VtpmDouble` (TPM wire format for CreatePrimary /
//! GetRandom / FlushContext only) until the libtpms-backed service is plugged in.

use std::sync::Arc;

use rand::{CryptoRng, RngCore};
use rsa::traits::PublicKeyParts;
use svsm_attest::chain::SimulatedRoots;
use svsm_attest::{SimulatedSnp, SimulatedSnpConfig};
use svsm_protocol::doubles::VtpmDouble;
use svsm_protocol::model::{SimulatedRmp, SimulatedVcpus};
use svsm_protocol::{Svsm, SvsmConfig, VtpmService};

/// gPA of the BSP's calling area.
pub const CALLING_AREA: u64 = 0x1000;
/// SVSM memory: the last 64 KiB of guest memory.
pub const SVSM_REGION_SIZE: u64 = 0x1_0000;
/// First gPA guests may use for their own buffers.
pub const GUEST_FREE_START: u64 = 0x10_0000;

/// Guest buffers may use `[GUEST_FREE_START, guest_free_end(size))`.
pub fn guest_free_end(memory_size: u64) -> u64 {
    memory_size.saturating_sub(SVSM_REGION_SIZE)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds an SVSM for `memory_size` bytes of guest memory on a simulated SNP platform issued by `roots`, with
/// the vTPM double (a fresh RSA-2048 EK) as its vTPM.
pub fn simulated_svsm(
    memory_size: u64,
    roots: Arc<SimulatedRoots>,
    config: SimulatedSnpConfig,
    rng: &mut (impl CryptoRng + RngCore),
) -> Result<Svsm, BoxError> {
    let ek = rsa::RsaPrivateKey::new(rng, 2048)?;
    let modulus: [u8; 256] = ek.n().to_bytes_be().try_into().map_err(|_| "EK modulus is not 256 bytes")?;
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    simulated_svsm_with(memory_size, roots, config, Some(Box::new(VtpmDouble::new(modulus, seed))), rng)
}

/// Builds an SVSM on the simulated SNP platform with the given vTPM service (e.g. the libtpms vTPM).
pub fn simulated_svsm_with(
    memory_size: u64,
    roots: Arc<SimulatedRoots>,
    config: SimulatedSnpConfig,
    vtpm: Option<Box<dyn VtpmService + Send>>,
    rng: &mut (impl CryptoRng + RngCore),
) -> Result<Svsm, BoxError> {
    let snp = SimulatedSnp::new(roots, config, rng)?;
    Ok(Svsm::new(
        SvsmConfig {
            svsm_base: guest_free_end(memory_size),
            svsm_size: SVSM_REGION_SIZE,
            initial_caa: CALLING_AREA,
        },
        Box::new(SimulatedRmp::new()),
        Box::new(SimulatedVcpus::new(1)),
        vtpm,
        Box::new(snp),
    ))
}
