//! The guest side, as edk2's `VirtMmCommunicationDxe` + `VariableSmmRuntimeDxe` drive the service: probe
//! `QUERY_PROTOCOL(4, 1)` once, then for every MM message copy header + message into one 64 KiB
//! page-aligned buffer, call `SVSM_UEFI_MM_REQUEST(buffer, 65536)` (success iff RAX = 0) and copy the
//! reply back. Used by `svsm-host guest uefi`, the tests and the benchmarks; it reaches the SVSM only
//! through a [`SvsmTransport`].

use alloc::string::String;
use alloc::vec::Vec;

use svsm_protocol::guest::{Guest, GuestError, SvsmTransport};
use svsm_protocol::{Guid, Registers, call_rax};

use crate::mm::{self, EDK2_BUFFER_SIZE, MM_HEADER_SIZE, status};
use crate::protocol::{PROTOCOL_UEFI_MM, UEFI_MM_REQUEST};

/// Why a guest-side UEFI call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UefiGuestError {
    /// The SVSM call itself failed (RAX, or the transport).
    #[error("SVSM call failed: {0}")]
    Call(#[from] GuestError),
    /// The SVSM does not offer protocol 4 version 1.
    #[error("the SVSM does not offer the UEFI MM protocol (4) version 1")]
    NotOffered,
    /// The service answered with this EFI status.
    #[error("EFI status {0:#x} ({name})", name = status_name(*.0))]
    Efi(u64),
    /// The reply does not parse.
    #[error("malformed reply: {0}")]
    BadReply(&'static str),
}

/// The EFI status's name, for messages.
pub fn status_name(st: u64) -> &'static str {
    match st {
        status::SUCCESS => "EFI_SUCCESS",
        status::INVALID_PARAMETER => "EFI_INVALID_PARAMETER",
        status::UNSUPPORTED => "EFI_UNSUPPORTED",
        status::BUFFER_TOO_SMALL => "EFI_BUFFER_TOO_SMALL",
        status::DEVICE_ERROR => "EFI_DEVICE_ERROR",
        status::WRITE_PROTECTED => "EFI_WRITE_PROTECTED",
        status::OUT_OF_RESOURCES => "EFI_OUT_OF_RESOURCES",
        status::NOT_FOUND => "EFI_NOT_FOUND",
        status::ACCESS_DENIED => "EFI_ACCESS_DENIED",
        status::SECURITY_VIOLATION => "EFI_SECURITY_VIOLATION",
        _ => "other",
    }
}

/// What QueryVariableInfo reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariableInfo {
    /// MaximumVariableStorageSize.
    pub max_storage: u64,
    /// RemainingVariableStorageSize.
    pub remaining: u64,
    /// MaximumVariableSize.
    pub max_variable: u64,
}

/// A guest's UEFI variable driver.
#[derive(Debug)]
pub struct UefiGuest<T> {
    guest: Guest<T>,
    buffer: u64,
}

impl<T: SvsmTransport> UefiGuest<T> {
    /// Probes the protocol like `VirtMmCommunicationDxe` and uses the 64 KiB at `buffer_gpa` (page aligned,
    /// guest memory) as its communication buffer.
    pub fn probe(mut guest: Guest<T>, buffer_gpa: u64) -> Result<Self, UefiGuestError> {
        match guest.query_protocol(PROTOCOL_UEFI_MM, 1)? {
            Some((max, min)) if (min..=max).contains(&1) => Ok(UefiGuest { guest, buffer: buffer_gpa }),
            _ => Err(UefiGuestError::NotOffered),
        }
    }

    /// The underlying guest (for other calls on the same transport).
    pub fn guest(&mut self) -> &mut Guest<T> {
        &mut self.guest
    }

    /// One `EFI_MM_COMMUNICATE`: returns the message as the SVSM left it (MessageLength bytes).
    pub fn communicate(&mut self, guid: &Guid, message: &[u8]) -> Result<Vec<u8>, UefiGuestError> {
        if MM_HEADER_SIZE + message.len() > EDK2_BUFFER_SIZE {
            return Err(UefiGuestError::Call(GuestError::Invalid(
                "MM message larger than the 64 KiB buffer",
            )));
        }
        let framed = mm::encode_communicate(guid, message);
        let mem = self.guest.transport.memory();
        mem.write(self.buffer, &framed).map_err(|_| GuestError::Memory)?;
        let mut regs = Registers {
            rax: call_rax(PROTOCOL_UEFI_MM, UEFI_MM_REQUEST),
            rcx: self.buffer,
            rdx: EDK2_BUFFER_SIZE as u64,
            ..Default::default()
        };
        self.guest.call(&mut regs)?;
        let mut back = alloc::vec![0u8; message.len()];
        self.guest
            .transport
            .memory()
            .read(self.buffer + MM_HEADER_SIZE as u64, &mut back)
            .map_err(|_| GuestError::Memory)?;
        Ok(back)
    }

    fn variable_call(&mut self, message: &[u8]) -> Result<mm::VariableReply, UefiGuestError> {
        let back = self.communicate(&mm::SMM_VARIABLE_GUID, message)?;
        mm::parse_variable_reply(&back).ok_or(UefiGuestError::BadReply("shorter than its header"))
    }

    /// GetVariable with the whole payload as data buffer: `(attributes, data)`.
    pub fn get_variable(&mut self, name: &str, vendor: &Guid) -> Result<(u32, Vec<u8>), UefiGuestError> {
        let room = EDK2_BUFFER_SIZE
            - MM_HEADER_SIZE
            - mm::VARIABLE_HEADER_SIZE
            - mm::ACCESS_HEADER_SIZE
            - mm::encode_name(name).len();
        let reply = self.variable_call(&mm::get_variable_message(vendor, name, room))?;
        if reply.status != status::SUCCESS {
            return Err(UefiGuestError::Efi(reply.status));
        }
        let access = mm::parse_access(&reply.payload, true)
            .map_err(|_| UefiGuestError::BadReply("access variable"))?;
        Ok((access.attributes, access.data))
    }

    /// SetVariable (empty data deletes).
    pub fn set_variable(
        &mut self,
        name: &str,
        vendor: &Guid,
        attributes: u32,
        data: &[u8],
    ) -> Result<(), UefiGuestError> {
        let reply = self.variable_call(&mm::set_variable_message(vendor, name, attributes, data))?;
        match reply.status {
            status::SUCCESS => Ok(()),
            st => Err(UefiGuestError::Efi(st)),
        }
    }

    /// Every variable's (vendor, name), by GetNextVariableName from the empty name until NOT_FOUND.
    pub fn list(&mut self) -> Result<Vec<(Guid, String)>, UefiGuestError> {
        let mut out = Vec::new();
        let (mut vendor, mut name) = (Guid::NULL, String::new());
        loop {
            let reply = self.variable_call(&mm::get_next_variable_message(&vendor, &name, 1024))?;
            match reply.status {
                status::SUCCESS => {}
                status::NOT_FOUND => return Ok(out),
                st => return Err(UefiGuestError::Efi(st)),
            }
            let (v, n, _) =
                mm::parse_next(&reply.payload).map_err(|_| UefiGuestError::BadReply("next name"))?;
            if out.len() > 4096 || out.iter().any(|(ov, on)| *ov == v && *on == n) {
                return Err(UefiGuestError::BadReply("the variable list does not end"));
            }
            out.push((v, n.clone()));
            (vendor, name) = (v, n);
        }
    }

    /// QueryVariableInfo.
    pub fn query_variable_info(&mut self, attributes: u32) -> Result<VariableInfo, UefiGuestError> {
        let reply = self.variable_call(&mm::query_variable_info_message(attributes))?;
        if reply.status != status::SUCCESS {
            return Err(UefiGuestError::Efi(reply.status));
        }
        let p = &reply.payload;
        let word = |o: usize| -> Result<u64, UefiGuestError> {
            let b = p.get(o..o + 8).ok_or(UefiGuestError::BadReply("query info"))?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(u64::from_le_bytes(a))
        };
        Ok(VariableInfo { max_storage: word(0)?, remaining: word(8)?, max_variable: word(16)? })
    }

    /// An event as edk2 signals it (header, MessageLength 1, one zero byte): EndOfDxe, ReadyToBoot,
    /// ExitBootServices.
    pub fn signal_event(&mut self, event: &Guid) -> Result<(), UefiGuestError> {
        self.communicate(event, &mm::event_message()).map(|_| ())
    }
}
