//! Building TPM commands: [`CommandBuilder`], TPM2B appends and the typed builders in [`cmd`].

use alloc::vec::Vec;

use super::*;
use crate::error::MarshalError;

/// Builds one TPM 2.0 command from its parts.
#[derive(Debug, Clone)]
pub struct CommandBuilder {
    code: u32,
    handles: Vec<u32>,
    auth: Option<Vec<u8>>,
    params: Vec<u8>,
}

impl CommandBuilder {
    /// A command with the given code and nothing else yet.
    pub fn new(code: u32) -> Self {
        CommandBuilder { code, handles: Vec::new(), auth: None, params: Vec::new() }
    }

    /// Appends a handle to the handle area.
    pub fn handle(mut self, handle: u32) -> Self {
        self.handles.push(handle);
        self
    }

    /// Adds one password session (TPM_RS_PW) with `password` to the authorization area. Call once per
    /// handle that needs authorization, in handle order.
    pub fn password_auth(self, password: &[u8]) -> Self {
        self.password_session(password, 0)
    }

    /// [`password_auth`](Self::password_auth) with these TPMA_SESSION `attributes` (e.g. 0x01,
    /// continueSession).
    pub fn password_session(mut self, password: &[u8], attributes: u8) -> Self {
        let area = self.auth.get_or_insert_with(Vec::new);
        area.extend_from_slice(&rh::PASSWORD_SESSION.to_be_bytes());
        area.extend_from_slice(&0u16.to_be_bytes()); // nonceCaller: empty
        area.push(attributes); // sessionAttributes
        put_tpm2b_unchecked(area, password);
        self
    }

    /// Appends a u8 parameter.
    pub fn u8(mut self, v: u8) -> Self {
        self.params.push(v);
        self
    }

    /// Appends a u16 parameter.
    pub fn u16(mut self, v: u16) -> Self {
        self.params.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a u32 parameter.
    pub fn u32(mut self, v: u32) -> Self {
        self.params.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw, already-marshalled parameter bytes.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.params.extend_from_slice(v);
        self
    }

    /// Appends a TPM2B (u16 size + bytes).
    pub fn tpm2b(mut self, v: &[u8]) -> Result<Self, MarshalError> {
        put_tpm2b(&mut self.params, v)?;
        Ok(self)
    }

    /// The marshalled command.
    pub fn build(self) -> Result<Vec<u8>, MarshalError> {
        let mut out = Vec::with_capacity(HEADER_SIZE + 4 * self.handles.len() + self.params.len() + 32);
        let tag = if self.auth.is_some() { st::SESSIONS } else { st::NO_SESSIONS };
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // size, patched below
        out.extend_from_slice(&self.code.to_be_bytes());
        for h in &self.handles {
            out.extend_from_slice(&h.to_be_bytes());
        }
        if let Some(auth) = &self.auth {
            let len = u32::try_from(auth.len()).map_err(|_| MarshalError::TooLarge)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(auth);
        }
        out.extend_from_slice(&self.params);
        let size = u32::try_from(out.len()).map_err(|_| MarshalError::TooLarge)?;
        out[2..6].copy_from_slice(&size.to_be_bytes());
        Ok(out)
    }
}

/// Appends a TPM2B, failing if `v` is longer than a u16 size can say.
pub fn put_tpm2b(out: &mut Vec<u8>, v: &[u8]) -> Result<(), MarshalError> {
    let len = u16::try_from(v.len()).map_err(|_| MarshalError::TooLarge)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(v);
    Ok(())
}

/// Appends a TPM2B whose length the caller guarantees fits (short constant data).
fn put_tpm2b_unchecked(out: &mut Vec<u8>, v: &[u8]) {
    let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(v.get(..usize::from(len)).unwrap_or(v));
}

/// Builders for the commands the vTPM issues itself (manufacturing, info, benchmarks).
pub mod cmd {
    use super::*;

    /// TPM2_Startup(su).
    pub fn startup(su: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::STARTUP).u16(su).build()
    }

    /// TPM2_Shutdown(su).
    pub fn shutdown(su: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::SHUTDOWN).u16(su).build()
    }

    /// TPM2_GetRandom(bytes).
    pub fn get_random(bytes: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::GET_RANDOM).u16(bytes).build()
    }

    /// TPM2_CreatePrimary under `hierarchy` (empty hierarchy password) with `template`, no sensitive data,
    /// no outside info, no PCR selection.
    pub fn create_primary(hierarchy: u32, template: &PublicArea) -> Result<Vec<u8>, MarshalError> {
        create_primary_from(hierarchy, &template.marshal()?, 0)
    }

    /// [`create_primary`] from an already marshalled TPMT_PUBLIC `public` (e.g. a guest's template, passed
    /// on unparsed), the password session with TPMA_SESSION `session_attributes`.
    pub fn create_primary_from(
        hierarchy: u32,
        public: &[u8],
        session_attributes: u8,
    ) -> Result<Vec<u8>, MarshalError> {
        // TPM2B_SENSITIVE_CREATE { size 4, TPM2B userAuth (empty), TPM2B data (empty) }
        let sensitive = [0u8, 4, 0, 0, 0, 0];
        CommandBuilder::new(cc::CREATE_PRIMARY)
            .handle(hierarchy)
            .password_session(&[], session_attributes)
            .bytes(&sensitive)
            .tpm2b(public)?
            .tpm2b(&[])? // outsideInfo
            .u32(0) // TPML_PCR_SELECTION count
            .build()
    }

    /// TPM2_FlushContext(handle).
    pub fn flush_context(handle: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::FLUSH_CONTEXT).u32(handle).build()
    }

    /// TPM2_EvictControl(auth = `auth_hierarchy`, object) to `persistent`.
    pub fn evict_control(auth_hierarchy: u32, object: u32, persistent: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::EVICT_CONTROL)
            .handle(auth_hierarchy)
            .handle(object)
            .password_auth(&[])
            .u32(persistent)
            .build()
    }

    /// TPM2_NV_DefineSpace(auth = `auth_hierarchy`, empty index auth, `public`).
    pub fn nv_define_space(auth_hierarchy: u32, public: &NvPublic) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_DEFINE_SPACE)
            .handle(auth_hierarchy)
            .password_auth(&[])
            .tpm2b(&[])?
            .tpm2b(&public.marshal()?)?
            .build()
    }

    /// TPM2_NV_Write(auth, index, data, offset).
    pub fn nv_write(auth: u32, index: u32, data: &[u8], offset: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_WRITE)
            .handle(auth)
            .handle(index)
            .password_auth(&[])
            .tpm2b(data)?
            .u16(offset)
            .build()
    }

    /// TPM2_NV_Read(auth, index, size, offset).
    pub fn nv_read(auth: u32, index: u32, size: u16, offset: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_READ)
            .handle(auth)
            .handle(index)
            .password_auth(&[])
            .u16(size)
            .u16(offset)
            .build()
    }

    /// TPM2_NV_ReadPublic(index).
    pub fn nv_read_public(index: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_READ_PUBLIC).handle(index).build()
    }

    /// TPM2_ReadPublic(object).
    pub fn read_public(object: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::READ_PUBLIC).handle(object).build()
    }
}
