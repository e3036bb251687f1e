//! Debian's own OVMF varstore images (package `ovmf`): what the parser reads from them, and that the writer's
//! 4 MiB layout is the layout Debian ships.

use svsm_ovmf_vars::fd::{self, FdLayout};
use svsm_ovmf_vars::{EfiVar, Guid};

const EMPTY_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const MS_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
const EMPTY_2M: &str = "/usr/share/OVMF/OVMF_VARS.fd";

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e} (apt-get install ovmf; it is in the Makefile's APT_PACKAGES)")
    })
}

const EFI_GLOBAL: Guid = uguid::guid!("8be4df61-93ca-11d2-aa0d-00e098032b8c");
const IMAGE_SECURITY_DB: Guid = uguid::guid!("d719b2cb-3d3a-4596-a3bc-dad00e67656f");

fn find<'a>(vars: &'a [EfiVar], name: &str, guid: Guid) -> &'a EfiVar {
    vars.iter().find(|v| v.name() == name && *v.guid() == guid).unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn empty_4m_layout_is_byte_for_byte_debians_empty_file() {
    let written = fd::write(&[], &FdLayout::Ovmf4M).unwrap();
    let debian = read(EMPTY_4M);
    assert_eq!(written.len(), debian.len());
    let first_difference = written.iter().zip(&debian).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "generated 4M image differs from {EMPTY_4M}");
}

#[test]
fn ms_image_has_the_secure_boot_variables_debian_documents() {
    let image = fd::parse(&read(MS_4M)).unwrap();
    assert_eq!(image.geometry.variables_start, 0x64);
    assert_eq!(image.geometry.store_end, 0x40000);
    assert_eq!(image.variables.len(), 31);
    // 31 live copies, 26 deleted ones (observed with a plain walk of the file).
    assert_eq!(image.stats.added, 31);
    assert_eq!(image.stats.dead, 26);
    for (name, guid) in
        [("PK", EFI_GLOBAL), ("KEK", EFI_GLOBAL), ("db", IMAGE_SECURITY_DB), ("dbx", IMAGE_SECURITY_DB)]
    {
        let var = find(&image.variables, name, guid);
        assert_eq!(u32::from(var.attr()), 0x27, "{name} attributes");
        assert!(var.time().is_some_and(|t| t.year >= 2020), "{name} has its authenticated-write timestamp");
        // An EFI_SIGNATURE_LIST starts with its type GUID and a list size no larger than the data.
        let list_size = u32::from_le_bytes(var.data()[16..20].try_into().unwrap()) as usize;
        assert!(list_size <= var.data().len(), "{name}: signature list size {list_size}");
    }
    let sb_enable =
        find(&image.variables, "SecureBootEnable", uguid::guid!("f0a30bc7-af08-4556-99c4-001009c93a44"));
    assert_eq!(sb_enable.data(), [1]);
    assert!(sb_enable.time().is_none());
}

#[test]
fn written_4m_image_reads_back_the_same_variables() {
    let vars = fd::parse(&read(MS_4M)).unwrap().variables;
    let written = fd::write(&vars, &FdLayout::Ovmf4M).unwrap();
    let again = fd::parse(&written).unwrap();
    assert_eq!(again.variables, vars);
    assert_eq!(again.stats.dead, 0, "a written image has no deleted copies");
    // Outside the variable area the image is Debian's empty one.
    let empty = read(EMPTY_4M);
    assert_eq!(written[..0x64], empty[..0x64]);
    assert_eq!(written[0x40000..], empty[0x40000..]);
}

#[test]
fn template_layout_keeps_the_2m_builds_geometry() {
    let vars = fd::parse(&read(MS_4M)).unwrap().variables;
    let template = read(EMPTY_2M);
    let written = fd::write(&vars, &FdLayout::Template(template.clone())).unwrap();
    assert_eq!(written.len(), template.len());
    let image = fd::parse(&written).unwrap();
    assert_eq!(image.variables, vars);
    assert_eq!(
        image.geometry,
        fd::FdGeometry { used_end: image.geometry.used_end, ..fd::parse(&template).unwrap().geometry }
    );
    let store_end = image.geometry.store_end;
    assert_eq!(written[store_end..], template[store_end..], "the FTW area after the store is the template's");
}
