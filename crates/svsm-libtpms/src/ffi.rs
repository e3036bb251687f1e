//! The libtpms 0.9 C API (`/usr/include/libtpms/tpm_library.h`, `tpm_memory.h`, `tpm_tis.h`), by hand.

use core::ffi::{c_char, c_int, c_uchar, c_uint};

pub type TpmResult = u32;
pub type TpmBool = u8;

pub const TPM_SUCCESS: TpmResult = 0;
pub const TPM_FAIL: TpmResult = 9;
/// Returned by `tpm_nvram_loaddata` for "no such blob".
pub const TPM_RETRY: TpmResult = 0x800;

/// `TPMLIB_TPM_VERSION_2` of `enum TPMLIB_TPMVersion`.
pub const TPMLIB_TPM_VERSION_2: c_uint = 1;

#[repr(C)]
pub struct LibtpmsCallbacks {
    pub size_of_struct: c_int,
    pub tpm_nvram_init: Option<extern "C" fn() -> TpmResult>,
    pub tpm_nvram_loaddata:
        Option<extern "C" fn(*mut *mut c_uchar, *mut u32, u32, *const c_char) -> TpmResult>,
    pub tpm_nvram_storedata: Option<extern "C" fn(*const c_uchar, u32, u32, *const c_char) -> TpmResult>,
    pub tpm_nvram_deletename: Option<extern "C" fn(u32, *const c_char, TpmBool) -> TpmResult>,
    pub tpm_io_init: Option<extern "C" fn() -> TpmResult>,
    pub tpm_io_getlocality: Option<extern "C" fn(*mut u32, u32) -> TpmResult>,
    pub tpm_io_getphysicalpresence: Option<extern "C" fn(*mut TpmBool, u32) -> TpmResult>,
}

unsafe extern "C" {
    pub fn TPMLIB_ChooseTPMVersion(ver: c_uint) -> TpmResult;
    pub fn TPMLIB_RegisterCallbacks(cbs: *mut LibtpmsCallbacks) -> TpmResult;
    pub fn TPMLIB_MainInit() -> TpmResult;
    pub fn TPMLIB_Terminate();
    pub fn TPMLIB_Process(
        respbuffer: *mut *mut c_uchar,
        resp_size: *mut u32,
        respbufsize: *mut u32,
        command: *mut c_uchar,
        command_size: u32,
    ) -> TpmResult;
    pub fn TPMLIB_VolatileAll_Store(buffer: *mut *mut c_uchar, buflen: *mut u32) -> TpmResult;
    pub fn TPMLIB_CancelCommand() -> TpmResult;
    pub fn TPMLIB_SetBufferSize(wanted_size: u32, min_size: *mut u32, max_size: *mut u32) -> u32;
    pub fn TPMLIB_GetVersion() -> u32;
    pub fn TPM_Malloc(buffer: *mut *mut c_uchar, size: u32) -> TpmResult;
    pub fn TPM_Free(buffer: *mut c_uchar);
    pub fn TPM_IO_TpmEstablished_Get(established: *mut TpmBool) -> TpmResult;
    pub fn TPM_IO_TpmEstablished_Reset() -> TpmResult;
}
