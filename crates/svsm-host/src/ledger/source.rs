//! The ledger service as a [`LedgerSource`]: what `serve --ledger service:HOST:PORT` gives the store.

use std::time::Duration;

use svsm_ledger::tcp::TcpTransport;
use svsm_ledger::{LedgerKey, ServiceLedger, VmId};
use svsm_store::{Ledger, OsRandom};

use crate::state::{LedgerSource, LedgerTrust, StateError, VolumeName};

/// Records at a ledger service, reached over TCP (on the native platform the host is the relay; in an SVSM
/// the same client runs over the host's channel). The host cannot forge or replay an answer, so this ledger
/// is [`LedgerTrust::Independent`] of the host, as long as the ledger key is not in the host's hands: today
/// the key comes from a file (`ledger enrol`), which on the native platform the host can read; once key
/// release lands, it comes from the attested release.
#[derive(Debug, Clone)]
pub struct ServiceLedgerSource {
    addr: String,
    vm: VmId,
    key: LedgerKey,
    timeout: Duration,
}

impl ServiceLedgerSource {
    /// A source for VM `vm` at the service `addr` (`host:port`); `timeout` bounds each exchange.
    pub fn new(addr: impl Into<String>, vm: VmId, key: LedgerKey, timeout: Duration) -> Self {
        ServiceLedgerSource { addr: addr.into(), vm, key, timeout }
    }
}

impl LedgerSource for ServiceLedgerSource {
    fn open_ledger(&self, _volume: &VolumeName) -> Result<Box<dyn Ledger>, StateError> {
        // Connects lazily: an unreachable service shows as Unavailable on the first exchange.
        let transport = TcpTransport::new(self.addr.clone(), self.timeout);
        Ok(Box::new(ServiceLedger::new(self.vm, self.key.clone(), transport, OsRandom)))
    }

    fn trust(&self) -> LedgerTrust {
        LedgerTrust::Independent
    }

    fn describe(&self) -> String {
        format!("ledger service {} as VM {}", self.addr, self.vm)
    }
}
