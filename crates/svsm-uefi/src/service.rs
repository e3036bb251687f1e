//! [`UefiVariables`]: `virtfw-varstore`'s `EfiVarStore` behind the MM interface, with non-volatile changes
//! made durable in a [`VariableStorage`] before each reply is released.
//!
//! Per message: bounds checks the crate does not do (sizes that overflow, names that are not terminated)
//! → for SetVariable, the capacity check and the [`AuthenticatedWritePolicy`] → `core_request_dispatch` →
//! the changed non-volatile variables (found through the crate's `fs_*` change tracking) committed as one
//! store transaction. If that commit fails the guest gets `EFI_DEVICE_ERROR` for the request, and the
//! service refuses every later message ([`UefiError::Poisoned`]): the variables in memory are then ahead of
//! the volume, and answering from them would acknowledge state that does not exist. A restart reloads the
//! durable state.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use svsm_protocol::Guid;
use virtfw_libefi::efivar::types::{EfiVar, EfiVarAttr, EfiVarId};
use virtfw_varstore::fs::{FsIndexParser, FsVariableIndexEntry};
use virtfw_varstore::store::{EfiVarStore, EfiVarStoreConfig};
use zerocopy::{FromBytes, IntoBytes};

use crate::api::{MmService, StoredVariable, VariableChange, VariableKey, VariableStorage};
use crate::authenticated::{
    AuthDecision, AuthenticatedWrite, AuthenticatedWritePolicy, CurrentVariable, VariableLookup,
    VarstoreDefault,
};
use crate::error::UefiError;
use crate::mm::{self, status};

/// How the service is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UefiConfig {
    /// Most bytes of non-volatile data (sum of values) accepted; beyond it SetVariable answers
    /// `EFI_OUT_OF_RESOURCES` before anything changes. Default 256 KiB, the size QueryVariableInfo reports.
    pub max_nv_bytes: usize,
    /// `virtfw-varstore`'s `enforce_secure_boot` (SecureBootEnable read-only).
    pub enforce_secure_boot: bool,
    /// `virtfw-varstore`'s `allow_custom_mode`.
    pub allow_custom_mode: bool,
}

impl Default for UefiConfig {
    fn default() -> Self {
        UefiConfig { max_nv_bytes: 256 * 1024, enforce_secure_boot: false, allow_custom_mode: false }
    }
}

/// The UEFI variable service.
pub struct UefiVariables<S: VariableStorage> {
    store: EfiVarStore,
    storage: S,
    policy: Box<dyn AuthenticatedWritePolicy + Send>,
    config: UefiConfig,
    /// The non-volatile variables exactly as the storage holds them (timestamps included).
    durable: BTreeMap<VariableKey, StoredVariable>,
    /// Timestamps of authenticated writes not yet committed.
    pending_times: BTreeMap<VariableKey, [u8; 16]>,
    next_inode: u32,
    poisoned: bool,
}

impl<S: VariableStorage> core::fmt::Debug for UefiVariables<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UefiVariables")
            .field("storage", &self.storage)
            .field("nv_variables", &self.durable.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn efi_id(name: &str, vendor: &Guid) -> EfiVarId {
    EfiVarId::new(String::from(name), uguid::Guid::from_bytes(vendor.0))
}

fn index_entry(vendor: &Guid, inode: u32, attributes: u32, name: &str) -> Option<FsVariableIndexEntry> {
    let mut raw = [0u8; 28];
    raw[..16].copy_from_slice(&vendor.0);
    raw[16..20].copy_from_slice(&inode.to_le_bytes());
    raw[20..24].copy_from_slice(&attributes.to_le_bytes());
    raw[24..28].copy_from_slice(&u32::try_from(name.len()).ok()?.to_le_bytes());
    FsVariableIndexEntry::read_from_bytes(&raw).ok()
}

const _: () = assert!(core::mem::size_of::<FsVariableIndexEntry>() == 28);

impl<S: VariableStorage> UefiVariables<S> {
    /// Loads the persisted variables into a fresh `EfiVarStore`, runs its boot-time initialisation
    /// (`reset`: SetupMode, SecureBoot, SignatureSupport, ...) and commits what that changed, so the
    /// service starts from durable state. Authenticated writes go through [`VarstoreDefault`].
    pub fn open(storage: S, config: UefiConfig) -> Result<Self, UefiError> {
        Self::open_with_policy(storage, config, Box::new(VarstoreDefault))
    }

    /// [`UefiVariables::open`] with an [`AuthenticatedWritePolicy`] (e.g. `svsm-uefi-auth`'s verifier).
    pub fn open_with_policy(
        mut storage: S,
        config: UefiConfig,
        policy: Box<dyn AuthenticatedWritePolicy + Send>,
    ) -> Result<Self, UefiError> {
        let vars = storage.load()?;
        let mut store = EfiVarStore::new();
        store.configure(EfiVarStoreConfig {
            allow_custom_mode: config.allow_custom_mode,
            enforce_secure_boot: config.enforce_secure_boot,
        });
        let mut service = UefiVariables {
            store,
            storage,
            policy,
            config,
            durable: BTreeMap::new(),
            pending_times: BTreeMap::new(),
            next_inode: 16,
            poisoned: false,
        };
        for var in vars {
            crate::record::check_variable(&var)?;
            service.install(&var.name, &var.vendor, var.attributes, &var.data)?;
            service.durable.insert(var.key(), var);
        }
        service.store.reset();
        service.persist(Vec::new())?;
        tracing::info!(
            variables = service.durable.len(),
            persistent = service.storage.is_persistent(),
            "UEFI variables loaded"
        );
        Ok(service)
    }

    /// Puts a variable into `EfiVarStore` without its checks and without marking it modified.
    fn install(&mut self, name: &str, vendor: &Guid, attributes: u32, data: &[u8]) -> Result<(), UefiError> {
        let entry = index_entry(vendor, self.next_inode, attributes, name)
            .ok_or(UefiError::InvalidVariable("name too long"))?;
        self.next_inode = self.next_inode.wrapping_add(1).max(16);
        self.store.fs_set_variable(&entry, name, data);
        Ok(())
    }

    /// The non-volatile variables as they are durable now.
    pub fn variables(&self) -> impl Iterator<Item = &StoredVariable> + '_ {
        self.durable.values()
    }

    /// One durable non-volatile variable.
    pub fn get(&self, name: &str, vendor: &Guid) -> Option<&StoredVariable> {
        self.durable.get(&VariableKey { vendor: *vendor, name: String::from(name) })
    }

    /// The storage underneath.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Whether a failed write stopped the service.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Commits every non-volatile change `EfiVarStore` tracked since the last commit, plus `extra`.
    fn persist(&mut self, extra: Vec<VariableChange>) -> Result<(), UefiError> {
        if self.store.fs_get_modified().is_unchanged() && extra.is_empty() {
            return Ok(());
        }
        let index = self.store.fs_make_index().map_err(|_| UefiError::InvalidVariable("variable index"))?;
        let explicit: BTreeSet<VariableKey> = extra
            .iter()
            .map(|c| match c {
                VariableChange::Put(v) => v.key(),
                VariableChange::Remove(k) => k.clone(),
            })
            .collect();
        let mut present = BTreeSet::new();
        let mut changes = extra;
        for (entry, name) in FsIndexParser::new(&index) {
            let raw = entry.as_bytes();
            let mut vendor = [0u8; 16];
            vendor.copy_from_slice(&raw[..16]);
            let attributes = u32::from_le_bytes([raw[20], raw[21], raw[22], raw[23]]);
            let key = VariableKey { vendor: Guid(vendor), name: name.clone() };
            if !explicit.contains(&key)
                && let Some(data) = self.store.fs_get_variable(&entry, &name)
            {
                let timestamp = self
                    .pending_times
                    .get(&key)
                    .copied()
                    .or_else(|| self.durable.get(&key).and_then(|v| v.timestamp));
                changes.push(VariableChange::Put(StoredVariable {
                    name,
                    vendor: key.vendor,
                    attributes,
                    timestamp,
                    data: data.to_vec(),
                }));
            }
            present.insert(key);
        }
        for key in self.durable.keys() {
            if !present.contains(key) && !explicit.contains(key) {
                changes.push(VariableChange::Remove(key.clone()));
            }
        }
        if let Err(err) = self.storage.apply(&changes) {
            tracing::error!(%err, "committing UEFI variables failed; the service stops until restarted");
            self.poisoned = true;
            return Err(err);
        }
        for change in changes {
            match change {
                VariableChange::Put(v) => {
                    self.durable.insert(v.key(), v);
                }
                VariableChange::Remove(k) => {
                    self.durable.remove(&k);
                }
            }
        }
        self.pending_times.clear();
        self.store.fs_clear_modified();
        Ok(())
    }

    fn nv_bytes_after(&self, key: &VariableKey, new_len: usize) -> usize {
        let total: usize = self.durable.values().map(|v| v.data.len()).sum();
        let old = self.durable.get(key).map_or(0, |v| v.data.len());
        total.saturating_sub(old).saturating_add(new_len)
    }

    /// SetVariable's own steps before `virtfw-varstore`: capacity, then the authenticated-write policy.
    /// `Ok(Some(reply))` answers the guest directly.
    fn pre_set(&mut self, access: &mm::AccessVariable) -> Result<Option<Vec<u8>>, UefiError> {
        let key = VariableKey { vendor: access.vendor, name: access.name.clone() };
        let reply = |st| Ok(Some(mm::status_reply(mm::FN_SET_VARIABLE, st)));
        if access.attributes & mm::ATTR_NON_VOLATILE != 0 && !access.data.is_empty() {
            let new_var = !self.durable.contains_key(&key);
            if (new_var && self.storage.free_slots() == 0)
                || self.nv_bytes_after(&key, access.data.len()) > self.config.max_nv_bytes
                || access.data.len() > crate::record::MAX_DATA_BYTES
            {
                return reply(status::OUT_OF_RESOURCES);
            }
        }
        if access.attributes & (mm::ATTR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS | mm::ATTR_APPEND_WRITE) == 0 {
            return Ok(None);
        }
        let write = AuthenticatedWrite {
            name: &access.name,
            vendor: access.vendor,
            attributes: access.attributes,
            data: &access.data,
        };
        let lookup = Lookup { durable: &self.durable, store: &self.store };
        let decision = self.policy.check(&lookup, &write);
        match decision {
            AuthDecision::Default => {
                // virtfw keeps the payload only; the header's EFI_TIME is ours to persist.
                if access.data.len() >= 16 {
                    let mut ts = [0u8; 16];
                    ts.copy_from_slice(&access.data[..16]);
                    self.pending_times.insert(key, ts);
                }
                Ok(None)
            }
            AuthDecision::Refuse(st) => reply(st),
            AuthDecision::Write { data, timestamp } => {
                let attributes = access.attributes & !mm::ATTR_APPEND_WRITE;
                let var = StoredVariable {
                    name: access.name.clone(),
                    vendor: access.vendor,
                    attributes,
                    timestamp: Some(timestamp),
                    data,
                };
                if attributes & mm::ATTR_NON_VOLATILE != 0 {
                    crate::record::check_variable(&var)
                        .map_err(|_| UefiError::InvalidVariable("policy result"))?;
                }
                self.install(&var.name, &var.vendor, attributes, &var.data)?;
                let extra = if attributes & mm::ATTR_NON_VOLATILE != 0 {
                    alloc::vec![VariableChange::Put(var)]
                } else {
                    Vec::new()
                };
                self.commit_or_device_error(extra)
            }
            AuthDecision::Delete => {
                let Some(old) = self.durable.get(&key).cloned() else { return reply(status::NOT_FOUND) };
                // The crate refuses to delete a time-authenticated variable; the policy verified it.
                let plain = old.attributes & !mm::ATTR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
                self.install(&old.name, &old.vendor, plain, &old.data)?;
                let attr = EfiVarAttr::from(plain);
                if let Err(e) =
                    self.store.delete(EfiVar::new_from_slice(efi_id(&old.name, &old.vendor), attr, &[]))
                {
                    self.install(&old.name, &old.vendor, old.attributes, &old.data)?;
                    return reply(e.status().0 as u64);
                }
                self.commit_or_device_error(alloc::vec![VariableChange::Remove(key)])
            }
        }
    }

    fn commit_or_device_error(&mut self, extra: Vec<VariableChange>) -> Result<Option<Vec<u8>>, UefiError> {
        Ok(Some(match self.persist(extra) {
            Ok(()) => mm::status_reply(mm::FN_SET_VARIABLE, status::SUCCESS),
            Err(_) => mm::status_reply(mm::FN_SET_VARIABLE, status::DEVICE_ERROR),
        }))
    }

    fn variable_message(&mut self, message: &[u8]) -> Result<Vec<u8>, UefiError> {
        let Some(function) = mm::function_of(message).filter(|_| message.len() >= mm::VARIABLE_HEADER_SIZE)
        else {
            // Too short for even the header: nothing to answer in (virtfw-varstore does the same).
            return Ok(Vec::new());
        };
        if let Err(st) = mm::precheck_variable_message(message) {
            return Ok(mm::status_reply(function, st));
        }
        if function == mm::FN_SET_VARIABLE {
            let payload = message.get(mm::VARIABLE_HEADER_SIZE..).unwrap_or(&[]);
            let access =
                mm::parse_access(payload, true).map_err(|_| UefiError::InvalidVariable("checked"))?;
            if let Some(reply) = self.pre_set(&access)? {
                return Ok(reply);
            }
        }
        let reply = virtfw_varstore::mm::core::core_request_dispatch(
            &mut self.store,
            &mm::SMM_VARIABLE_GUID.0,
            message,
        );
        if function == mm::FN_SET_VARIABLE
            && mm::parse_variable_reply(&reply).map(|r| r.status) != Some(status::SUCCESS)
        {
            self.pending_times.clear();
        }
        match self.persist(Vec::new()) {
            Ok(()) => Ok(reply),
            Err(_) => Ok(mm::status_reply(function, status::DEVICE_ERROR)),
        }
    }
}

impl<S: VariableStorage> MmService for UefiVariables<S> {
    fn communicate(&mut self, guid: &Guid, message: &[u8]) -> Result<Vec<u8>, UefiError> {
        if self.poisoned {
            return Err(UefiError::Poisoned);
        }
        let mut reply = if *guid == mm::SMM_VARIABLE_GUID {
            self.variable_message(message)?
        } else {
            let reply = virtfw_varstore::mm::core::core_request_dispatch(&mut self.store, &guid.0, message);
            if self.persist(Vec::new()).is_err() {
                return Err(UefiError::Poisoned);
            }
            reply
        };
        if reply.len() > message.len() {
            // Cannot happen with virtfw-varstore 0.6.6 (it truncates); never write past the message.
            tracing::warn!(reply = reply.len(), message = message.len(), "MM reply longer than the message");
            reply.truncate(message.len());
        }
        Ok(reply)
    }

    fn persistent(&self) -> bool {
        self.storage.is_persistent()
    }

    fn secure_boot_enabled(&self) -> bool {
        !self.store.get_setup_mode()
    }
}

struct Lookup<'a> {
    durable: &'a BTreeMap<VariableKey, StoredVariable>,
    store: &'a EfiVarStore,
}

impl VariableLookup for Lookup<'_> {
    fn current(&self, name: &str, vendor: &Guid) -> Option<CurrentVariable<'_>> {
        let v = self.durable.get(&VariableKey { vendor: *vendor, name: String::from(name) })?;
        Some(CurrentVariable { attributes: v.attributes, data: &v.data, timestamp: v.timestamp })
    }

    fn setup_mode(&self) -> bool {
        self.store.get_setup_mode()
    }
}
