//! The file ledger as a [`LedgerSource`]: records in a directory of the host (development only).

use std::path::{Path, PathBuf};

use svsm_store::{FileLedger, Ledger};

use crate::state::api::{LedgerSource, LedgerTrust, VolumeName};
use crate::state::error::StateError;

/// Ledger records in one directory (`<state-dir>/ledger` by default), shared by all volumes: each record
/// file is named by the store's own volume id. The host controls the directory, so this ledger detects
/// accidents and stale copies, not an attacker on the host ([`LedgerTrust::Development`]).
#[derive(Debug, Clone)]
pub struct FileLedgerSource {
    dir: PathBuf,
}

impl FileLedgerSource {
    /// Records in `dir` (created, mode 0700, on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileLedgerSource { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl LedgerSource for FileLedgerSource {
    fn open_ledger(&self, _volume: &VolumeName) -> Result<Box<dyn Ledger>, StateError> {
        if !self.dir.exists() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| StateError::io("creating ledger directory", &self.dir, e))?;
        }
        let ledger = FileLedger::new(&self.dir).map_err(|e| StateError::LedgerUnavailable {
            volume: _volume.to_string(),
            source_name: self.describe(),
            reason: e.to_string(),
        })?;
        Ok(Box::new(ledger))
    }

    fn trust(&self) -> LedgerTrust {
        LedgerTrust::Development
    }

    fn describe(&self) -> String {
        format!("file ledger {} (development: the host can rewind it)", self.dir.display())
    }
}
