//! An IGVM file parsed with the `igvm` crate and checked for what SNP launch needs: its SNP platform, guest
//! policy, ID block, and the pages the loader will hand to SNP_LAUNCH_UPDATE, in order.

use std::collections::{BTreeMap, BTreeSet};

use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader};
use igvm_defs::{IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY, IgvmPageDataType, IgvmPlatformType};
use zerocopy::IntoBytes;

use crate::error::IgvmError;
use crate::page_info::{Digest384, KVM_VMSA_GPA, PAGE_SIZE, sha384};

/// Largest IGVM file accepted (the whole file is held in memory).
pub const MAX_FILE_SIZE: u64 = 1 << 30;
/// Largest parameter area accepted: real ones are a few pages, and each page costs a PAGE_INFO hash.
pub const MAX_PARAMETER_AREA: u64 = 16 << 20;

const PAGE: u64 = PAGE_SIZE as u64;
/// Length of the SEV ABI's ECDSA public-key structure that ID_KEY_DIGEST and AUTHOR_KEY_DIGEST hash.
const SEV_ECDSA_PUBKEY_LEN: usize = 0x404;

/// What the loader does for one directive, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// A page of data (`data` of at most a page; empty means a page of zeros).
    Data {
        /// IGVM data type (NORMAL, SECRETS, CPUID_DATA, CPUID_XF).
        data_type: IgvmPageDataType,
        /// Flag "unmeasured".
        unmeasured: bool,
        /// Flag "shared" (host-visible: not part of private memory).
        shared: bool,
        /// The data carried in the file is empty (a zero page).
        empty: bool,
    },
    /// A parameter area of `bytes` bytes, inserted page by page from the gPA.
    Parameter {
        /// Size of the area.
        bytes: u64,
    },
    /// A VMSA page (SNP VP context).
    Vmsa {
        /// VP index.
        vp_index: u16,
    },
}

/// One directive that puts memory into the guest for the SNP platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Index of the directive in the file's directive list.
    pub directive: usize,
    /// First gPA.
    pub gpa: u64,
    /// What is loaded.
    pub kind: LoadKind,
}

/// The SNP ID block carried by the file, and the report fields it determines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdBlock {
    /// LD: the launch digest the ID block was signed for (SNP_LAUNCH_FINISH fails if it differs).
    pub ld: Digest384,
    /// FAMILY_ID (copied into the report).
    pub family_id: [u8; 16],
    /// IMAGE_ID (copied into the report).
    pub image_id: [u8; 16],
    /// ID block VERSION.
    pub version: u32,
    /// GUEST_SVN (copied into the report).
    pub guest_svn: u32,
    /// ID key algorithm (1 = ECDSA P-384 with SHA-384).
    pub id_key_algorithm: u32,
    /// ID_KEY_DIGEST: SHA-384 of the ID public key in the SEV ABI's 0x404-byte ECDSA public-key format.
    pub id_key_digest: Digest384,
    /// AUTHOR_KEY_DIGEST, when the block enables an author key.
    pub author_key_digest: Option<Digest384>,
}

/// Page counts, for the summary `igvm measure` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Pages of data measured by contents.
    pub data: u64,
    /// Pages the file carries no data for (zero pages).
    pub zero: u64,
    /// Pages flagged unmeasured.
    pub unmeasured: u64,
    /// Secrets pages.
    pub secrets: u64,
    /// CPUID pages.
    pub cpuid: u64,
    /// Shared (host-visible) pages, which are not private memory.
    pub shared: u64,
    /// Pages of inserted parameter areas.
    pub parameter: u64,
    /// VMSAs.
    pub vmsa: u64,
}

/// A parsed IGVM file, validated for an SNP launch.
#[derive(Debug)]
pub struct SnpImage {
    file: IgvmFile,
    compatibility_mask: u32,
    policy: u64,
    id_block: Option<IdBlock>,
    loads: Vec<Load>,
    counts: PageCounts,
    kvm_issues: Vec<String>,
}

fn platform_name(t: IgvmPlatformType) -> String {
    match t {
        IgvmPlatformType::NATIVE => "native".into(),
        IgvmPlatformType::VSM_ISOLATION => "VBS".into(),
        IgvmPlatformType::SEV_SNP => "SEV-SNP".into(),
        IgvmPlatformType::TDX => "TDX".into(),
        IgvmPlatformType::SEV => "SEV".into(),
        IgvmPlatformType::SEV_ES => "SEV-ES".into(),
        other => format!("type {:#x}", other.0),
    }
}

/// SHA-384 over the SEV ABI ECDSA public key (CURVE u32 LE, QX[72], QY[72], zero to 0x404 bytes), the form
/// the loader hands to SNP_LAUNCH_FINISH in ID_AUTH_INFO; the IGVM form has an extra reserved word.
fn key_digest(key: &IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY) -> Digest384 {
    let mut sev = [0u8; SEV_ECDSA_PUBKEY_LEN];
    sev[..4].copy_from_slice(&key.curve.to_le_bytes());
    sev[4..76].copy_from_slice(&key.qx);
    sev[76..148].copy_from_slice(&key.qy);
    sha384(&sev)
}

impl SnpImage {
    /// Parses and validates `bytes` for the SNP platform the file declares.
    pub fn parse(bytes: &[u8]) -> Result<Self, IgvmError> {
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(IgvmError::FileTooLarge { size: bytes.len() as u64, max: MAX_FILE_SIZE });
        }
        check_file_offsets(bytes)?;
        // The igvm crate's parser still has panicking paths on malformed input (slices and asserts in its VBS
        // VP-context parsing, for one); a panic there is reported as a refusal of the file, not a crash.
        let parsed = std::panic::catch_unwind(|| IgvmFile::new_from_binary(bytes, None))
            .map_err(|_| IgvmError::ParserPanicked)?;
        Self::from_file(parsed.map_err(IgvmError::Parse)?)
    }

    /// Validates an already parsed file.
    pub fn from_file(file: IgvmFile) -> Result<Self, IgvmError> {
        let mut found = Vec::new();
        let mut mask = None;
        for p in file.platforms() {
            let IgvmPlatformHeader::SupportedPlatform(sp) = p;
            found.push(platform_name(sp.platform_type));
            if sp.platform_type == IgvmPlatformType::SEV_SNP {
                mask = Some(sp.compatibility_mask);
            }
        }
        let Some(mask) = mask else {
            let found = if found.is_empty() { "none".to_string() } else { found.join(", ") };
            return Err(IgvmError::NoSnpPlatform { found });
        };
        // The igvm crate requires a platform's mask to have exactly one bit, so "contains the mask" (igvm's
        // rule) and "shares a bit with the mask" (igvmmeasure's rule) select the same headers.
        let applies = |m: u32| m & mask == mask;

        let mut policy = None;
        for h in file.initializations() {
            if let IgvmInitializationHeader::GuestPolicy { policy: p, compatibility_mask } = h
                && applies(*compatibility_mask)
                && policy.replace(*p).is_some()
            {
                return Err(IgvmError::DuplicateGuestPolicy);
            }
        }
        let policy = policy.ok_or(IgvmError::MissingGuestPolicy)?;

        let mut areas: BTreeMap<u32, u64> = BTreeMap::new();
        let mut occupied: BTreeSet<u64> = BTreeSet::new();
        let mut loads = Vec::new();
        let mut counts = PageCounts::default();
        let mut id_block = None;
        let mut occupy = |directive: usize, gpa: u64| {
            if occupied.insert(gpa) { Ok(()) } else { Err(IgvmError::OverlappingPages { directive, gpa }) }
        };
        let aligned = |directive: usize, gpa: u64| {
            if gpa.is_multiple_of(PAGE) { Ok(()) } else { Err(IgvmError::UnalignedGpa { directive, gpa }) }
        };
        for (i, d) in file.directives().iter().enumerate() {
            // Directives without a mask (parameter area declarations) apply to every platform.
            if d.compatibility_mask().is_some_and(|m| !applies(m)) {
                continue;
            }
            match d {
                IgvmDirectiveHeader::PageData { gpa, flags, data_type, data, .. } => {
                    aligned(i, *gpa)?;
                    if flags.is_2mb_page() {
                        return Err(IgvmError::UnsupportedPage {
                            directive: i,
                            what: "2 MiB page data is not supported; split it into 4 KiB pages".into(),
                        });
                    }
                    if data.len() > PAGE_SIZE {
                        return Err(IgvmError::UnsupportedPage {
                            directive: i,
                            what: format!("{} bytes of page data; at most 4096", data.len()),
                        });
                    }
                    let shared = flags.shared();
                    if shared {
                        counts.shared += 1;
                    } else {
                        occupy(i, *gpa)?;
                        match *data_type {
                            IgvmPageDataType::SECRETS => counts.secrets += 1,
                            IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => counts.cpuid += 1,
                            _ if flags.unmeasured() => counts.unmeasured += 1,
                            _ if data.is_empty() => counts.zero += 1,
                            _ => counts.data += 1,
                        }
                    }
                    loads.push(Load {
                        directive: i,
                        gpa: *gpa,
                        kind: LoadKind::Data {
                            data_type: *data_type,
                            unmeasured: flags.unmeasured(),
                            shared,
                            empty: data.is_empty(),
                        },
                    });
                }
                IgvmDirectiveHeader::ParameterArea { number_of_bytes, parameter_area_index, .. } => {
                    let bad = |what: &str| IgvmError::BadParameterArea {
                        directive: i,
                        index: *parameter_area_index,
                        what: what.into(),
                    };
                    if *number_of_bytes == 0 || !number_of_bytes.is_multiple_of(PAGE) {
                        return Err(bad("size is not a non-zero multiple of 4 KiB"));
                    }
                    if *number_of_bytes > MAX_PARAMETER_AREA {
                        return Err(bad("larger than 16 MiB"));
                    }
                    areas.insert(*parameter_area_index, *number_of_bytes);
                }
                IgvmDirectiveHeader::ParameterInsert(ins) => {
                    let index = ins.parameter_area_index;
                    let bad =
                        |what: &str| IgvmError::BadParameterArea { directive: i, index, what: what.into() };
                    aligned(i, ins.gpa)?;
                    let bytes = *areas.get(&index).ok_or_else(|| bad("inserted but never declared"))?;
                    ins.gpa
                        .checked_add(bytes)
                        .ok_or_else(|| bad("runs past the end of the address space"))?;
                    for page in 0..bytes / PAGE {
                        occupy(i, ins.gpa + page * PAGE)?;
                    }
                    counts.parameter += bytes / PAGE;
                    loads.push(Load { directive: i, gpa: ins.gpa, kind: LoadKind::Parameter { bytes } });
                }
                IgvmDirectiveHeader::SnpVpContext { gpa, vp_index, .. } => {
                    aligned(i, *gpa)?;
                    occupy(i, *gpa)?;
                    counts.vmsa += 1;
                    loads.push(Load {
                        directive: i,
                        gpa: *gpa,
                        kind: LoadKind::Vmsa { vp_index: *vp_index },
                    });
                }
                IgvmDirectiveHeader::SnpIdBlock {
                    author_key_enabled,
                    ld,
                    family_id,
                    image_id,
                    version,
                    guest_svn,
                    id_key_algorithm,
                    id_public_key,
                    author_public_key,
                    ..
                } => {
                    let block = IdBlock {
                        ld: *ld,
                        family_id: *family_id,
                        image_id: *image_id,
                        version: *version,
                        guest_svn: *guest_svn,
                        id_key_algorithm: *id_key_algorithm,
                        id_key_digest: key_digest(id_public_key),
                        author_key_digest: (*author_key_enabled & 1 == 1)
                            .then(|| key_digest(author_public_key)),
                    };
                    if id_block.replace(block).is_some() {
                        return Err(IgvmError::DuplicateIdBlock);
                    }
                }
                _ => {}
            }
        }
        if counts.vmsa == 0 {
            return Err(IgvmError::NoVmsa);
        }
        let kvm_issues = kvm_layout_issues(&file, &loads);
        Ok(SnpImage { file, compatibility_mask: mask, policy, id_block, loads, counts, kvm_issues })
    }

    /// The parsed file.
    pub fn file(&self) -> &IgvmFile {
        &self.file
    }

    /// Compatibility mask of the SNP platform.
    pub fn compatibility_mask(&self) -> u32 {
        self.compatibility_mask
    }

    /// The SNP guest policy (the report's POLICY).
    pub fn policy(&self) -> u64 {
        self.policy
    }

    /// The ID block, if the file has one.
    pub fn id_block(&self) -> Option<&IdBlock> {
        self.id_block.as_ref()
    }

    /// What the loader puts into guest memory, in order.
    pub fn loads(&self) -> &[Load] {
        &self.loads
    }

    /// Page counts.
    pub fn counts(&self) -> PageCounts {
        self.counts
    }

    /// Why KVM would measure this file differently from its directive order (empty: it would not). KVM
    /// measures every VMSA last, at gPA [`KVM_VMSA_GPA`].
    pub fn kvm_layout_issues(&self) -> &[String] {
        &self.kvm_issues
    }

    /// The page data (or VMSA bytes) of directive `index`; empty for other directives.
    pub fn data_of(&self, index: usize) -> &[u8] {
        match self.file.directives().get(index) {
            Some(IgvmDirectiveHeader::PageData { data, .. }) => data,
            Some(IgvmDirectiveHeader::SnpVpContext { vmsa, .. }) => vmsa.as_bytes(),
            _ => &[],
        }
    }
}

/// Header types whose body carries a file offset into the data section, and where.
const FILE_OFFSET_AT: [(u32, usize); 5] = [
    (0x104, 4),  // CoRIM document
    (0x105, 4),  // CoRIM signature
    (0x301, 12), // parameter area
    (0x302, 12), // page data
    (0x304, 12), // VP context
];

/// Checks that every file offset in the variable headers points into the file data section, before the igvm
/// crate subtracts the section start from it (igvm 0.5 underflows on an offset inside the headers). Headers it
/// cannot walk are left to the igvm crate to refuse.
fn check_file_offsets(bytes: &[u8]) -> Result<(), IgvmError> {
    let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(offset), Some(size)) = (word(8), word(12)) else { return Ok(()) };
    let (start, Some(end)) = (offset as usize, (offset as usize).checked_add(size as usize)) else {
        return Ok(());
    };
    let mut at = start;
    let mut index = 0;
    while at < end.min(bytes.len()) {
        let (Some(typ), Some(len)) = (word(at), word(at + 4)) else { return Ok(()) };
        for (t, field) in FILE_OFFSET_AT {
            if typ == t && (len as usize) >= field + 4 {
                let Some(file_offset) = word(at + 8 + field) else { return Ok(()) };
                // Offset 0 means "no data", except for a VP context, whose SNP VMSA igvm 0.5 reads from it
                // unconditionally.
                let inside_headers = (file_offset != 0 || typ == 0x304) && (file_offset as usize) < end;
                if inside_headers || file_offset as usize > bytes.len() {
                    return Err(IgvmError::BadFileOffset { header: index, typ, file_offset });
                }
            }
        }
        let Some(next) = (len as usize).checked_add(7).map(|l| at + 8 + (l & !7)) else { return Ok(()) };
        at = next;
        index += 1;
    }
    Ok(())
}

fn kvm_layout_issues(file: &IgvmFile, loads: &[Load]) -> Vec<String> {
    let mut issues = Vec::new();
    let vmsas: Vec<&Load> = loads.iter().filter(|l| matches!(l.kind, LoadKind::Vmsa { .. })).collect();
    if vmsas.len() != 1 {
        issues.push(format!("{} VMSAs; KVM launches exactly one from an IGVM file", vmsas.len()));
    }
    let measured_last = loads.iter().rev().find(|l| !matches!(l.kind, LoadKind::Data { shared: true, .. }));
    if !matches!(measured_last.map(|l| l.kind), Some(LoadKind::Vmsa { .. })) {
        issues
            .push("the VMSA is not the last measured page; KVM measures VMSAs after all other pages".into());
    }
    for v in &vmsas {
        if v.gpa != KVM_VMSA_GPA {
            issues.push(format!("VMSA at gPA {:#x}; KVM measures it at {KVM_VMSA_GPA:#x}", v.gpa));
        }
        if let Some(IgvmDirectiveHeader::SnpVpContext { vmsa, .. }) = file.directives().get(v.directive)
            && !matches!(vmsa.cr0, 0x30 | 0x31)
        {
            issues.push(format!("VMSA CR0 {:#x}; KVM's reset state has CR0 0x30 or 0x31", vmsa.cr0));
        }
    }
    issues
}
