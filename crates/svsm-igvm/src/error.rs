//! Why an IGVM file could not be measured.

/// Everything that makes an IGVM file unmeasurable. Each says what is wrong and where, so a user can fix
/// the file (or the tool that built it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IgvmError {
    /// The file is larger than [`crate::MAX_FILE_SIZE`].
    #[error("IGVM file is {size} bytes; more than the {max} bytes this tool accepts")]
    FileTooLarge {
        /// Size of the file.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The `igvm` crate refused the file (truncated, bad header, bad checksum, bad directive...).
    #[error("not a valid IGVM file: {0}")]
    Parse(#[source] igvm::Error),
    /// A header points at file data outside the file's data section.
    #[error(
        "variable header {header} (type {typ:#x}) points at file offset {file_offset:#x}, outside the data section"
    )]
    BadFileOffset {
        /// Index of the header in the variable header section.
        header: usize,
        /// Its type.
        typ: u32,
        /// The offset it gives.
        file_offset: u32,
    },
    /// The `igvm` crate's parser panicked on the file (a malformed file hitting one of its unchecked paths).
    #[error(
        "the igvm crate's parser failed on this malformed file (it panicked); the file is not a valid IGVM file"
    )]
    ParserPanicked,
    /// No SEV-SNP platform header: the file cannot launch an SNP guest.
    #[error("the IGVM file has no SEV-SNP platform header (platforms in the file: {found})")]
    NoSnpPlatform {
        /// The platform types the file does declare.
        found: String,
    },
    /// No guest policy for the SNP platform.
    #[error("the IGVM file has no SEV-SNP guest policy (initialization header 0x101) for its SNP platform")]
    MissingGuestPolicy,
    /// Two guest policies for the SNP platform.
    #[error("the IGVM file has more than one SEV-SNP guest policy")]
    DuplicateGuestPolicy,
    /// Two ID blocks for the SNP platform.
    #[error("the IGVM file has more than one SEV-SNP ID block")]
    DuplicateIdBlock,
    /// No VMSA: the digest would depend on vCPU state the VMM makes up.
    #[error(
        "the IGVM file has no SNP VP context (VMSA); its launch digest would depend on the VMM's own vCPU state"
    )]
    NoVmsa,
    /// Two measured pages at one gPA (the second SNP_LAUNCH_UPDATE of a page fails on hardware).
    #[error("directive {directive} loads a page at gPA {gpa:#x} that an earlier directive already loaded")]
    OverlappingPages {
        /// Index of the later directive.
        directive: usize,
        /// The gPA.
        gpa: u64,
    },
    /// A gPA not aligned to 4 KiB.
    #[error("directive {directive} has gPA {gpa:#x}, which is not 4 KiB aligned")]
    UnalignedGpa {
        /// Index of the directive.
        directive: usize,
        /// The gPA.
        gpa: u64,
    },
    /// A page of data larger than 4 KiB, or a 2 MiB page (not supported).
    #[error("directive {directive}: {what}")]
    UnsupportedPage {
        /// Index of the directive.
        directive: usize,
        /// What is unsupported.
        what: String,
    },
    /// A parameter area that is empty, not page-sized, too large, or runs past the end of the address space.
    #[error("directive {directive}: parameter area {index}: {what}")]
    BadParameterArea {
        /// Index of the directive.
        directive: usize,
        /// Parameter area index.
        index: u32,
        /// What is wrong.
        what: String,
    },
    /// The `igvm` crate's measurement module refused the file.
    #[error("the igvm crate could not measure the file: {0}")]
    Measurement(#[source] igvm::measurement::MeasurementError),
    /// Reference-value JSON that is not the documented shape.
    #[error("reference values: {0}")]
    ReferenceValues(String),
}
