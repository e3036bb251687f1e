//! `Vtpm` (the platform state machine) and manufacturing against `TpmDouble`, the TPM engine **test double**
//! of the `test-utils` feature: the contract every engine keeps (power, NV durable before the response,
//! state missing vs manufacture, resume once), without libtpms.

use std::cell::Cell;
use std::rc::Rc;

use sha2::{Digest, Sha256};
use svsm_vtpm::double::{DoubleMode, TpmDouble};
use svsm_vtpm::manufacture::{
    self, CertIssuer, EK_ATTRIBUTES, EkCertIssuer, EkKind, ManufactureOptions, POLICY_A_SHA256, StoredState,
};
use svsm_vtpm::marshal::{self, NvPublic, PublicArea, Reader, alg, cmd, rc, rh, su};
use svsm_vtpm::{
    EngineError, MemNvStorage, NvBlob, NvData, NvStorage, StorageError, TpmEngine, Vtpm, VtpmError,
};

const SEED: [u8; 32] = [7; 32];

fn rc_of(resp: &[u8]) -> u32 {
    marshal::response_code(resp).expect("a TPM response header")
}

fn fresh() -> Vtpm<TpmDouble<MemNvStorage>> {
    Vtpm::new(TpmDouble::new(MemNvStorage::new(), DoubleMode::MayManufacture, SEED))
}

/// Storage that can be told to fail, sharing its switch with the test.
struct Flaky {
    inner: MemNvStorage,
    fail: Rc<Cell<bool>>,
}

impl NvStorage for Flaky {
    fn load(&mut self, blob: NvBlob) -> Result<Option<NvData>, StorageError> {
        self.inner.load(blob)
    }
    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError> {
        if self.fail.get() {
            return Err(StorageError::Backend("injected failure".into()));
        }
        self.inner.commit(changes)
    }
}

fn nv_public(index: u32, size: u16) -> NvPublic {
    NvPublic {
        index,
        name_alg: alg::SHA256,
        attributes: manufacture::EK_NV_ATTRIBUTES,
        auth_policy: vec![],
        data_size: size,
    }
}

#[test]
fn power_cycle_follows_the_platform_rules() {
    let mut v = fresh();
    assert!(!v.is_powered());
    assert_eq!(rc_of(&v.execute(&cmd::get_random(8).unwrap()).unwrap()), rc::FAILURE, "answered while off");
    v.power_on().unwrap();
    assert_eq!(rc_of(&v.execute(&cmd::get_random(8).unwrap()).unwrap()), rc::INITIALIZE, "before Startup");
    assert_eq!(rc_of(&v.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap()), rc::SUCCESS);
    let r = v.execute(&cmd::get_random(8).unwrap()).unwrap();
    let parsed = marshal::Response::parse(&r, 0).unwrap();
    assert_eq!(Reader::new(parsed.params).tpm2b().unwrap().len(), 8);
    // A second POWER_ON does not reset a running TPM.
    v.power_on().unwrap();
    assert_eq!(rc_of(&v.execute(&cmd::get_random(8).unwrap()).unwrap()), rc::SUCCESS);
    // Reset loses volatile state: Startup is needed again.
    v.reset().unwrap();
    assert_eq!(rc_of(&v.execute(&cmd::get_random(8).unwrap()).unwrap()), rc::INITIALIZE);
    v.set_nv(false);
    assert_eq!(rc_of(&v.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap()), rc::NV_UNAVAILABLE);
    v.set_nv(true);
    assert_eq!(rc_of(&v.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap()), rc::SUCCESS);
    v.power_off();
    assert_eq!(rc_of(&v.execute(&cmd::get_random(8).unwrap()).unwrap()), rc::FAILURE);
    assert!(matches!(v.established(), Err(VtpmError::Engine(EngineError::NotPowered))));
}

#[test]
fn locality_rules_are_enforced_before_and_by_the_engine() {
    let mut v = fresh();
    v.power_on().unwrap();
    assert_eq!(v.execute_at(5, &cmd::startup(su::CLEAR).unwrap()), Err(VtpmError::BadLocality(5)));
    assert!(v.engine().localities.is_empty(), "a bad locality reached the engine");
    assert_eq!(v.set_locality(9), Err(VtpmError::BadLocality(9)));
    v.set_locality(3).unwrap();
    v.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap();
    v.execute_at(1, &cmd::get_random(4).unwrap()).unwrap();
    assert_eq!(v.engine().localities, [3, 1]);
    v.engine_mut().assert_established();
    assert!(v.established().unwrap());
    assert!(v.reset_established(0).is_err(), "locality 0 cleared the established flag");
    assert!(v.established().unwrap());
    assert_eq!(v.reset_established(5), Err(VtpmError::BadLocality(5)));
    v.reset_established(3).unwrap();
    assert!(!v.established().unwrap());
}

#[test]
fn nv_change_is_durable_before_the_response_and_a_failed_store_withholds_it() {
    let fail = Rc::new(Cell::new(false));
    let storage = Flaky { inner: MemNvStorage::new(), fail: fail.clone() };
    let mut v = Vtpm::new(TpmDouble::new(storage, DoubleMode::MayManufacture, SEED));
    v.power_on().unwrap();
    v.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap();
    let before = v.engine().store_count();
    let define = cmd::nv_define_space(rh::PLATFORM, &nv_public(0x0150_0001, 16)).unwrap();
    assert_eq!(rc_of(&v.execute(&define).unwrap()), rc::SUCCESS);
    assert_eq!(v.engine().store_count(), before + 1);

    // What is in storage at the moment the response came back is enough for a new TPM to see the index.
    let durable = v.engine_mut().storage().inner.clone();
    let mut other = Vtpm::new(TpmDouble::new(durable, DoubleMode::RequireExisting, [0; 32]));
    other.power_on().unwrap();
    other.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap();
    let r = other.execute(&cmd::nv_read_public(0x0150_0001).unwrap()).unwrap();
    let p = marshal::Response::parse(&r, 0).unwrap();
    assert_eq!(NvPublic::parse(Reader::new(p.params).tpm2b().unwrap()).unwrap().data_size, 16);

    // A store that fails: no response, and the engine stops until recreated.
    fail.set(true);
    let write = cmd::nv_write(rh::PLATFORM, 0x0150_0001, b"abc", 0).unwrap();
    assert!(matches!(v.execute(&write), Err(VtpmError::Engine(EngineError::Persist(_)))));
    fail.set(false);
    // The engine refuses everything; the platform answers as a TPM in failure mode.
    assert_eq!(v.engine_mut().execute(0, &cmd::get_random(4).unwrap()), Err(EngineError::Stopped));
    assert_eq!(rc_of(&v.execute(&cmd::get_random(4).unwrap()).unwrap()), rc::FAILURE);
    assert_eq!(v.power_on(), Err(VtpmError::Engine(EngineError::Stopped)));
    // The unacknowledged write is in no durable state a restart could see; the acknowledged define is.
    let inner = std::mem::take(&mut v.engine_mut().storage().inner);
    let mut restarted = Vtpm::new(TpmDouble::new(inner, DoubleMode::RequireExisting, [0; 32]));
    restarted.power_on().unwrap();
    restarted.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap();
    let r = restarted.execute(&cmd::nv_read_public(0x0150_0001).unwrap()).unwrap();
    let p = marshal::Response::parse(&r, 0).unwrap();
    let public = NvPublic::parse(Reader::new(p.params).tpm2b().unwrap()).unwrap();
    assert_eq!(public.attributes & marshal::nv_attr::WRITTEN, 0, "the failed write became durable");
}

#[test]
fn missing_state_is_never_silently_manufactured() {
    let mut v = Vtpm::new(TpmDouble::new(MemNvStorage::new(), DoubleMode::RequireExisting, SEED));
    assert_eq!(v.power_on(), Err(VtpmError::Engine(EngineError::StateMissing)));
    assert!(!v.is_powered());
    assert!(v.engine_mut().storage().load(NvBlob::Permanent).unwrap().is_none());
}

#[test]
fn volatile_state_resumes_exactly_once() {
    let mut v = fresh();
    v.power_on().unwrap();
    v.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap();
    v.store_volatile().unwrap();
    v.power_off();
    v.power_on().unwrap();
    assert_eq!(rc_of(&v.execute(&cmd::get_random(4).unwrap()).unwrap()), rc::SUCCESS, "did not resume");
    assert!(v.engine_mut().storage().load(NvBlob::Volatile).unwrap().is_none(), "volatile blob kept");
    v.power_off();
    v.power_on().unwrap();
    assert_eq!(rc_of(&v.execute(&cmd::get_random(4).unwrap()).unwrap()), rc::INITIALIZE, "resumed twice");
}

struct TestIssuer {
    issued: Vec<EkKind>,
}

impl EkCertIssuer for TestIssuer {
    fn issue(&mut self, kind: EkKind, public: &PublicArea) -> Result<Vec<u8>, String> {
        self.issued.push(kind);
        // Longer than one NV_Write chunk, and bound to the key so a mix-up would show.
        let mut cert = public.marshal().map_err(|e| e.to_string())?;
        cert.resize(1500, 0xC5);
        Ok(cert)
    }
    fn describe(&self) -> CertIssuer {
        CertIssuer { development: true, description: "CN=test double CA".into() }
    }
}

#[test]
fn manufacture_provisions_eks_certs_templates_and_handles_and_survey_finds_them() {
    let mut engine = TpmDouble::new(MemNvStorage::new(), DoubleMode::MayManufacture, SEED);
    engine.power_on().unwrap();
    let mut issuer = TestIssuer { issued: vec![] };
    let options = ManufactureOptions { persist_eks: true, write_templates: true };
    let record = manufacture::manufacture(&mut engine, options, Some(&mut issuer)).unwrap();
    assert_eq!(issuer.issued, EkKind::ALL);
    assert_eq!(record.cert_issuer.as_ref().map(|i| i.development), Some(true));
    assert_eq!(record.eks.len(), 2);
    for (ek, kind) in record.eks.iter().zip(EkKind::ALL) {
        assert_eq!(ek.kind, kind);
        assert_eq!(ek.cert_len, Some(1500));
        assert!(ek.template_written);
        assert_eq!(ek.persistent_handle, Some(kind.persistent_handle()));
        let public = PublicArea::parse(&ek.public).unwrap();
        assert_eq!((public.attributes, public.auth_policy.as_slice()), (EK_ATTRIBUTES, &POLICY_A_SHA256[..]));
        assert_ne!(public, kind.template(), "the EK's unique field was not filled");
        let mut name = alg::SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(&ek.public));
        assert_eq!(ek.name, name);
    }
    assert_ne!(record.eks[0].name, record.eks[1].name);

    // Commit the record beside the final NV state, as the host does, and read it back.
    let mut storage = engine.into_storage();
    storage.store(NvBlob::Manufacture, &record.encode().unwrap()).unwrap();
    assert_eq!(manufacture::inspect(&mut storage).unwrap(), StoredState::Manufactured(record.clone()));

    // A TPM started from that state holds everything manufacture wrote, with the same EKs.
    let mut again = TpmDouble::new(storage.clone(), DoubleMode::RequireExisting, [0; 32]);
    again.power_on().unwrap();
    let surveyed = manufacture::survey(&mut again).unwrap();
    assert_eq!(surveyed, record.eks);

    // A different seed is a different TPM: its EKs differ.
    let mut other = TpmDouble::new(MemNvStorage::new(), DoubleMode::MayManufacture, [8; 32]);
    other.power_on().unwrap();
    let other_record = manufacture::manufacture(&mut other, ManufactureOptions::default(), None).unwrap();
    assert_ne!(other_record.eks[0].name, record.eks[0].name);
    assert_eq!(other_record.eks[0].cert_len, None);
    assert_eq!(other_record.eks[0].persistent_handle, None);
}

#[test]
fn manufacture_fails_precisely_on_an_already_started_tpm() {
    let mut engine = TpmDouble::new(MemNvStorage::new(), DoubleMode::MayManufacture, SEED);
    engine.power_on().unwrap();
    engine.execute(0, &cmd::startup(su::CLEAR).unwrap()).unwrap();
    let err = manufacture::manufacture(&mut engine, ManufactureOptions::default(), None).unwrap_err();
    assert!(
        matches!(err, VtpmError::Manufacture { step: "TPM2_Startup(CLEAR)", error: svsm_vtpm::MarshalError::ResponseCode(c) } if c == rc::INITIALIZE),
        "{err:?}"
    );
}

#[test]
fn unknown_commands_get_the_tpm_error_code() {
    let mut v = fresh();
    v.power_on().unwrap();
    v.execute(&cmd::startup(su::CLEAR).unwrap()).unwrap();
    let read_clock = marshal::CommandBuilder::new(marshal::cc::READ_CLOCK).build().unwrap();
    assert_eq!(rc_of(&v.execute(&read_clock).unwrap()), rc::COMMAND_CODE);
    let flush_nothing = cmd::flush_context(0x8000_0042).unwrap();
    assert_ne!(rc_of(&v.execute(&flush_nothing).unwrap()), rc::SUCCESS);
}
