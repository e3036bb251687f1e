//! The platform around a TPM engine: the signals a motherboard gives a TPM, shared by every front end.

use alloc::vec::Vec;

use crate::api::TpmEngine;
use crate::error::{EngineError, VtpmError};
use crate::marshal::{self, rc};

/// A vTPM: an engine plus the platform state every interface (mssim, swtpm, SVSM page) drives.
///
/// Front ends translate their protocol into these calls, so "power on twice", "command while powered off"
/// or "NV off" behave the same whichever socket or page a client uses.
#[derive(Debug)]
pub struct Vtpm<E> {
    engine: E,
    nv_on: bool,
    locality: u8,
}

impl<E: TpmEngine> Vtpm<E> {
    /// Wraps an engine. The TPM starts in whatever power state the engine is in, with NV available.
    pub fn new(engine: E) -> Self {
        Vtpm { engine, nv_on: true, locality: 0 }
    }

    /// The engine (e.g. for store counters).
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The engine, mutably.
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// Unwraps the engine.
    pub fn into_engine(self) -> E {
        self.engine
    }

    /// Power on (`_TPM_Init`). Powering on a TPM that is already on does nothing, as on the reference
    /// simulator, so a client that sends POWER_ON on every connect does not reset the TPM under others.
    pub fn power_on(&mut self) -> Result<(), VtpmError> {
        if !self.engine.is_powered() {
            self.engine.power_on()?;
        }
        Ok(())
    }

    /// Power off; volatile state is lost, NV state is already durable.
    pub fn power_off(&mut self) {
        self.engine.power_off();
    }

    /// Whether the TPM is powered on.
    pub fn is_powered(&self) -> bool {
        self.engine.is_powered()
    }

    /// Reset: power off then on (a reboot of the machine the TPM is in).
    pub fn reset(&mut self) -> Result<(), VtpmError> {
        self.engine.power_off();
        self.engine.power_on()?;
        Ok(())
    }

    /// NV available / unavailable signal. While off, commands are answered with TPM_RC_NV_UNAVAILABLE.
    pub fn set_nv(&mut self, on: bool) {
        self.nv_on = on;
    }

    /// Whether NV is available.
    pub fn nv_on(&self) -> bool {
        self.nv_on
    }

    /// Sets the locality of subsequent commands.
    pub fn set_locality(&mut self, locality: u8) -> Result<(), VtpmError> {
        if locality > 4 {
            return Err(VtpmError::BadLocality(locality));
        }
        self.locality = locality;
        Ok(())
    }

    /// The current locality.
    pub fn locality(&self) -> u8 {
        self.locality
    }

    /// Cancel signal for a running command.
    pub fn cancel(&mut self) {
        self.engine.cancel();
    }

    /// Executes one TPM command at the current locality.
    ///
    /// Answers like a TPM would for the platform states the engine cannot see: TPM_RC_FAILURE while powered
    /// off, TPM_RC_NV_UNAVAILABLE while NV is off. TPM 1.2-tagged commands (OVMF probes with TPM 1.2
    /// GetTicks) go to the engine like any other: libtpms in TPM 2.0 mode answers them with a TPM 2.0
    /// header, which is what tells firmware this is a TPM 2.0 (a TPM 1.2-tagged answer makes OVMF treat the
    /// device as a TPM 1.2 and measure nothing). Any NV change is durable before this returns; an `Err`
    /// means the response must not be released.
    pub fn execute(&mut self, command: &[u8]) -> Result<Vec<u8>, VtpmError> {
        self.execute_at(self.locality, command)
    }

    /// Executes one TPM command at an explicit locality (mssim and the SVSM page carry it per command).
    pub fn execute_at(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, VtpmError> {
        if locality > 4 {
            return Err(VtpmError::BadLocality(locality));
        }
        if !self.engine.is_powered() {
            return Ok(marshal::error_response(rc::FAILURE));
        }
        if !self.nv_on {
            return Ok(marshal::error_response(rc::NV_UNAVAILABLE));
        }
        match self.engine.execute(locality, command) {
            Ok(r) => Ok(r),
            Err(EngineError::NotPowered) => Ok(marshal::error_response(rc::FAILURE)),
            Err(e) => Err(e.into()),
        }
    }

    /// The established flag.
    pub fn established(&mut self) -> Result<bool, VtpmError> {
        Ok(self.engine.established()?)
    }

    /// Clears the established flag from `locality`.
    pub fn reset_established(&mut self, locality: u8) -> Result<(), VtpmError> {
        if locality > 4 {
            return Err(VtpmError::BadLocality(locality));
        }
        Ok(self.engine.reset_established(locality)?)
    }

    /// Stores the volatile state (suspend / migration).
    pub fn store_volatile(&mut self) -> Result<(), VtpmError> {
        Ok(self.engine.store_volatile()?)
    }

    /// The volatile state of the running TPM, not stored (migration and snapshots).
    pub fn volatile_state(&mut self) -> Result<Vec<u8>, VtpmError> {
        Ok(self.engine.volatile_state()?)
    }

    /// Negotiates the buffer size (0 queries); returns `(size, min, max)`.
    pub fn set_buffer_size(&mut self, wanted: u32) -> (u32, u32, u32) {
        self.engine.set_buffer_size(wanted)
    }
}
