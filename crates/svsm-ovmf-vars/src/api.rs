//! The one thing every format in this crate does: turn a file into virtfw-varstore variables and back.

use alloc::vec::Vec;
use virtfw_libefi::efivar::types::EfiVar;

use crate::error::Result;

/// A file format that carries a set of non-volatile UEFI variables between tools.
///
/// Variables are virtfw-varstore's own [`EfiVar`] (the type the SVSM's UEFI engine keeps), so what a format
/// reads can go straight into an `EfiVarStore` and what the engine holds can be written without a third
/// definition of "a variable".
pub trait VarStoreFormat {
    /// Every live variable in `bytes`, in file order. Any defect is an [`crate::Error`] naming it; no input
    /// panics.
    fn read(&self, bytes: &[u8]) -> Result<Vec<EfiVar>>;

    /// A complete file of this format holding exactly `vars`.
    fn write(&self, vars: &[EfiVar]) -> Result<Vec<u8>>;
}
