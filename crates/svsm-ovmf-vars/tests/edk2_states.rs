//! Which copies of a variable are live: edk2's rules for the states an interrupted update leaves behind.

use svsm_ovmf_vars::fd::{self, FdLayout};
use svsm_ovmf_vars::testing::variable_headers;
use svsm_ovmf_vars::{EfiVar, EfiVarAttr, EfiVarId, Error, Guid};

const VENDOR: Guid = uguid::guid!("11111111-2222-3333-4444-555555555555");

fn var(name: &str, data: &[u8]) -> EfiVar {
    EfiVar::new_from_slice(EfiVarId::new(name.into(), VENDOR), EfiVarAttr::new_nv_bs_rt(), data)
}

/// An image holding `vars` in order (written one by one, since the writer refuses duplicates), with the
/// state byte of the i-th header set to `states[i]`.
fn image_with_states(vars: &[EfiVar], states: &[u8]) -> Vec<u8> {
    let geometry = fd::parse(&fd::write(&[], &FdLayout::Ovmf4M).unwrap()).unwrap().geometry;
    let mut image = fd::write(&[], &FdLayout::Ovmf4M).unwrap();
    let mut at = geometry.variables_start;
    for var in vars {
        let one = fd::write(std::slice::from_ref(var), &FdLayout::Ovmf4M).unwrap();
        let len = fd::parse(&one).unwrap().geometry.used_end - geometry.variables_start;
        image[at..at + len].copy_from_slice(&one[geometry.variables_start..geometry.variables_start + len]);
        at += len;
    }
    for ((offset, _), state) in variable_headers(&image, &geometry).into_iter().zip(states) {
        image[offset + 2] = *state;
    }
    image
}

#[test]
fn added_copy_wins_over_one_in_deleted_transition() {
    let image = image_with_states(&[var("Boot", b"old"), var("Boot", b"new")], &[0x3e, 0x3f]);
    let parsed = fd::parse(&image).unwrap();
    assert_eq!(parsed.variables, vec![var("Boot", b"new")]);
    assert_eq!((parsed.stats.added, parsed.stats.superseded, parsed.stats.recovered), (1, 1, 0));
}

#[test]
fn copy_in_deleted_transition_is_recovered_when_the_new_copy_never_became_added() {
    // The update died after marking the old copy and writing only the new header (0x7f).
    let image = image_with_states(&[var("Boot", b"old"), var("Boot", b"new")], &[0x3e, 0x7f]);
    let parsed = fd::parse(&image).unwrap();
    assert_eq!(parsed.variables, vec![var("Boot", b"old")]);
    assert_eq!((parsed.stats.recovered, parsed.stats.dead), (1, 1));
}

#[test]
fn deleted_copies_are_skipped() {
    let image = image_with_states(&[var("A", b"1"), var("A", b"2"), var("B", b"3")], &[0x3c, 0x3d, 0x3f]);
    assert_eq!(fd::parse(&image).unwrap().variables, vec![var("B", b"3")]);
}

#[test]
fn two_added_copies_are_damage() {
    let image = image_with_states(&[var("A", b"1"), var("A", b"2")], &[0x3f, 0x3f]);
    match fd::parse(&image) {
        Err(Error::DuplicateVariable { name, first: 0x64, .. }) => assert_eq!(name, "A"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_name_under_two_guids_is_two_variables() {
    let other = EfiVar::new_from_slice(
        EfiVarId::new("A".into(), uguid::guid!("99999999-2222-3333-4444-555555555555")),
        EfiVarAttr::new_nv_bs(),
        b"x",
    );
    let image = fd::write(&[var("A", b"1"), other.clone()], &FdLayout::Ovmf4M).unwrap();
    assert_eq!(fd::parse(&image).unwrap().variables, vec![var("A", b"1"), other]);
}

#[test]
fn the_writer_refuses_to_write_a_variable_twice() {
    assert!(matches!(
        fd::write(&[var("A", b"1"), var("A", b"2")], &FdLayout::Ovmf4M),
        Err(Error::DuplicateToWrite { .. })
    ));
}

#[test]
fn a_store_too_small_for_the_variables_is_refused_when_writing() {
    let big = var("Big", &vec![0u8; 0x40000]);
    assert!(matches!(fd::write(&[big], &FdLayout::Ovmf4M), Err(Error::StoreFull { available: 0x3ff9c, .. })));
}
