//! The real libtpms engine: one per process, durable stores before responses, manufacturing, and the SVSM
//! page handler on top of it. Tests share one process, so they take turns through `SERIAL`.

use std::sync::{Arc, Mutex, MutexGuard};

use svsm_libtpms::{LibTpms, StateMode};
use svsm_vtpm::manufacture::{self, EkKind, ManufactureOptions, StoredState};
use svsm_vtpm::marshal::{self, Response, cmd, rh, su};
use svsm_vtpm::{
    EngineError, MemNvStorage, NvBlob, NvStorage, StorageError, TpmEngine, Vtpm, VtpmError, svsm_page,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Storage the test can look into and make fail, shared with the engine.
#[derive(Clone, Default)]
struct Shared {
    inner: Arc<Mutex<MemNvStorage>>,
    fail: Arc<Mutex<bool>>,
}

impl NvStorage for Shared {
    fn load(&mut self, blob: NvBlob) -> Result<Option<svsm_vtpm::NvData>, StorageError> {
        self.inner.lock().unwrap().load(blob)
    }
    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError> {
        if *self.fail.lock().unwrap() {
            return Err(StorageError::Backend("injected failure".into()));
        }
        self.inner.lock().unwrap().commit(changes)
    }
}

fn ok(resp: &[u8]) {
    assert_eq!(marshal::response_code(resp).unwrap(), 0, "TPM error response {resp:02x?}");
}

const NV_INDEX: u32 = 0x0150_0016;

fn define_nv(e: &mut LibTpms) {
    let public = marshal::NvPublic {
        index: NV_INDEX,
        name_alg: marshal::alg::SHA256,
        attributes: marshal::nv_attr::OWNERWRITE
            | marshal::nv_attr::OWNERREAD
            | marshal::nv_attr::AUTHWRITE
            | marshal::nv_attr::AUTHREAD,
        auth_policy: vec![],
        data_size: 64,
    };
    ok(&e.execute(0, &cmd::nv_define_space(rh::OWNER, &public).unwrap()).unwrap());
}

fn nv_read(e: &mut LibTpms) -> Vec<u8> {
    let r = e.execute(0, &cmd::nv_read(rh::OWNER, NV_INDEX, 64, 0).unwrap()).unwrap();
    let resp = Response::parse(&r, 0).unwrap();
    marshal::Reader::new(resp.params).tpm2b().unwrap().to_vec()
}

/// Manufactures into staging storage and commits the result to `target` in one transaction.
fn manufacture_into(
    target: &mut dyn NvStorage,
    options: ManufactureOptions,
) -> manufacture::ManufactureRecord {
    let mut engine = LibTpms::new(MemNvStorage::new(), StateMode::MayManufacture).unwrap();
    engine.power_on().unwrap();
    let record = manufacture::manufacture(&mut engine, options, None).unwrap();
    let mut staged = engine.into_storage();
    let permanent = staged.load(NvBlob::Permanent).unwrap().unwrap();
    let rec = record.encode().unwrap();
    target.commit(&[(NvBlob::Permanent, Some(&permanent)), (NvBlob::Manufacture, Some(&rec))]).unwrap();
    record
}

#[test]
fn only_one_engine_per_process() {
    let _s = serial();
    let first = LibTpms::new(MemNvStorage::new(), StateMode::MayManufacture).unwrap();
    assert_eq!(
        LibTpms::new(MemNvStorage::new(), StateMode::MayManufacture).unwrap_err(),
        EngineError::AlreadyInUse
    );
    drop(first);
    let again = LibTpms::new(MemNvStorage::new(), StateMode::MayManufacture);
    assert!(again.is_ok(), "dropping the engine must release the process-wide slot");
}

#[test]
fn missing_state_is_an_error_not_a_new_tpm() {
    let _s = serial();
    let storage = Shared::default();
    let mut e = LibTpms::new(storage.clone(), StateMode::RequireExisting).unwrap();
    assert_eq!(e.power_on().unwrap_err(), EngineError::StateMissing);
    assert!(!e.is_powered());
    assert!(storage.inner.lock().unwrap().blobs().is_empty(), "nothing may be written when state is missing");
}

#[test]
fn manufacture_then_nv_survives_restart_and_every_write_is_stored_before_the_response() {
    let _s = serial();
    let mut storage = Shared::default();
    let record =
        manufacture_into(&mut storage, ManufactureOptions { persist_eks: true, write_templates: true });
    assert_eq!(record.eks.len(), 2);
    assert!(
        matches!(manufacture::inspect(&mut storage.clone()).unwrap(), StoredState::Manufactured(r) if r == record)
    );

    let mut e = LibTpms::new(storage.clone(), StateMode::RequireExisting).unwrap();
    e.power_on().unwrap();
    ok(&e.execute(0, &cmd::startup(su::CLEAR).unwrap()).unwrap());
    // The EK is deterministic from the seeds: recreating it gives the recorded Name.
    let r =
        e.execute(0, &cmd::create_primary(rh::ENDORSEMENT, &EkKind::EccP256.template()).unwrap()).unwrap();
    let created = marshal::CreatedPrimary::parse(&r).unwrap();
    let ecc = record.eks.iter().find(|k| k.kind == EkKind::EccP256).unwrap();
    assert_eq!(created.name, ecc.name);
    ok(&e.execute(0, &cmd::flush_context(created.handle).unwrap()).unwrap());
    // Persistent EK handle and template index exist.
    ok(&e.execute(0, &cmd::read_public(0x8101_0002).unwrap()).unwrap());
    ok(&e.execute(0, &cmd::nv_read_public(EkKind::Rsa2048.template_index()).unwrap()).unwrap());

    define_nv(&mut e);
    for i in 0..5u8 {
        let before = e.store_count();
        let data = [i; 64];
        ok(&e.execute(0, &cmd::nv_write(rh::OWNER, NV_INDEX, &data, 0).unwrap()).unwrap());
        assert_eq!(e.store_count(), before + 1, "NV_Write must be stored before its response");
        // What is durable right now already holds the new data: restart from a copy of the storage.
        let snapshot = storage.inner.lock().unwrap().clone();
        assert_ne!(snapshot.blobs().get(&NvBlob::Permanent), None);
        let _ = snapshot;
    }
    drop(e);

    let mut e = LibTpms::new(storage.clone(), StateMode::RequireExisting).unwrap();
    e.power_on().unwrap();
    ok(&e.execute(0, &cmd::startup(su::CLEAR).unwrap()).unwrap());
    assert_eq!(nv_read(&mut e), vec![4u8; 64]);
}

#[test]
fn a_failed_store_withholds_the_response_and_stops_the_engine() {
    let _s = serial();
    let mut storage = Shared::default();
    manufacture_into(&mut storage, ManufactureOptions::default());
    let mut e = LibTpms::new(storage.clone(), StateMode::RequireExisting).unwrap();
    e.power_on().unwrap();
    ok(&e.execute(0, &cmd::startup(su::CLEAR).unwrap()).unwrap());
    define_nv(&mut e);
    ok(&e.execute(0, &cmd::nv_write(rh::OWNER, NV_INDEX, &[1; 64], 0).unwrap()).unwrap());
    *storage.fail.lock().unwrap() = true;
    let err = e.execute(0, &cmd::nv_write(rh::OWNER, NV_INDEX, &[2; 64], 0).unwrap()).unwrap_err();
    assert!(matches!(err, EngineError::Persist(_)), "{err:?}");
    assert_eq!(e.execute(0, &cmd::get_random(8).unwrap()).unwrap_err(), EngineError::Stopped);
    drop(e);
    *storage.fail.lock().unwrap() = false;
    let mut e = LibTpms::new(storage, StateMode::RequireExisting).unwrap();
    e.power_on().unwrap();
    ok(&e.execute(0, &cmd::startup(su::CLEAR).unwrap()).unwrap());
    assert_eq!(nv_read(&mut e), vec![1u8; 64], "the unacknowledged write must not appear");
}

#[test]
fn svsm_page_round_trip_through_the_real_engine() {
    let _s = serial();
    let mut storage = Shared::default();
    manufacture_into(&mut storage, ManufactureOptions::default());
    let mut e = LibTpms::new(storage, StateMode::RequireExisting).unwrap();
    e.power_on().unwrap();
    let mut vtpm = Vtpm::new(e);
    let send = |vtpm: &mut Vtpm<LibTpms>, command: &[u8]| -> Vec<u8> {
        let mut page = [0u8; svsm_page::PAGE_SIZE];
        page[..4].copy_from_slice(&8u32.to_le_bytes());
        page[5..9].copy_from_slice(&(command.len() as u32).to_le_bytes());
        page[9..9 + command.len()].copy_from_slice(command);
        svsm_page::handle_page(vtpm, &mut page).unwrap();
        let n = u32::from_le_bytes(page[..4].try_into().unwrap()) as usize;
        page[4..4 + n].to_vec()
    };
    // Linux sends Startup itself (TPM_OPS_AUTO_STARTUP).
    ok(&send(&mut vtpm, &cmd::startup(su::CLEAR).unwrap()));
    let r = send(&mut vtpm, &cmd::get_random(16).unwrap());
    ok(&r);
    assert_eq!(r.len(), 10 + 2 + 16);
    // A second Startup is a TPM-level error, carried in the response with SVSM success.
    assert_eq!(
        marshal::response_code(&send(&mut vtpm, &cmd::startup(su::CLEAR).unwrap())).unwrap(),
        marshal::rc::INITIALIZE
    );
    vtpm.power_off();
    let mut page = [0u8; svsm_page::PAGE_SIZE];
    let c = cmd::get_random(8).unwrap();
    page[..4].copy_from_slice(&8u32.to_le_bytes());
    page[5..9].copy_from_slice(&(c.len() as u32).to_le_bytes());
    page[9..9 + c.len()].copy_from_slice(&c);
    let err = svsm_page::handle_page(&mut vtpm, &mut page).unwrap_err();
    assert_eq!(err.svsm_result(), svsm_page::result::INVALID_REQUEST);
    assert!(matches!(err, svsm_page::PageError::InvalidRequest(VtpmError::Engine(EngineError::NotPowered))));
}
