//! Links every no_std core crate into one std-free static library. See Cargo.toml for why.
#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};

/// An allocator that never allocates: this library is only linked, never run.
struct NoAlloc;

// SAFETY: returning null is always a valid (failed) allocation; dealloc is never reached because nothing is
// ever allocated.
unsafe impl GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOC: NoAlloc = NoAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Keeps each crate's code reachable so the linker sees it.
#[unsafe(no_mangle)]
pub extern "C" fn no_std_check_touch() -> usize {
    let uefi_auth = svsm_uefi_auth::auth2::AuthenticatedData::parse(&[]).is_ok() as usize
        + svsm_uefi_auth::pkcs7::parse_signed_data(&[]).is_ok() as usize
        + svsm_uefi_auth::pkcs7::verify(&[], &[], &[]).is_err() as usize;
    let disk = svsm_block::MemDisk::new(512, 1);
    let faulty = disk.map(|d| svsm_block::fault::FaultDisk::new(d, svsm_block::fault::FaultConfig::new(0)));
    static POOL: svsm_block_virtio::BouncePool = svsm_block_virtio::BouncePool::new();
    let key = svsm_store::StoreKey::from_bytes([0; 32]);
    let devices = svsm_discovery::virtio_mmio_from_hardware_info(&[]);
    let flash = svsm_pflash::Pflash::probe(
        // SAFETY: never run (see NoAlloc); a zero-length window is never dereferenced by VolatileMmio anyway.
        unsafe { svsm_pflash::VolatileMmio::new(core::ptr::null_mut(), 0) },
        svsm_pflash::PflashConfig::new(svsm_pflash::BusWidth::X8),
    );
    core::mem::size_of_val(&faulty)
        + core::mem::size_of_val(&key)
        + svsm_store::format::BLOCK_SIZE
        + core::mem::size_of_val(&devices)
        + core::mem::size_of_val(&flash)
        + POOL.free_pages()
        + svsm_vtpm::svsm_page::parse_request(&[]).is_err() as usize
        + svsm_protocol::manifest::parse_services_manifest(&[]).is_err() as usize
        + svsm_vtpm::manufacture::EkKind::Rsa2048.template_bytes().len()
        + svsm_vtpm::marshal::PublicArea::parse(&[]).is_err() as usize
        + svsm_kbs::frame::Frame::decode(&[]).is_err() as usize
        + svsm_kbs::jwe::TeeKey::from_scalar(svsm_kbs::jwe::Curve::P384, &[1; 48])
            .map_or(0, |k| k.decrypt(b"{}").is_err() as usize)
        + core::mem::size_of::<svsm_kbs::KbsClient>()
        + svsm_channel::split(&[], 16, |k| Ok::<u8, svsm_channel::FrameError>(k)).is_ok() as usize
        + svsm_ledger::Request::claimed_vm(&[]).is_err() as usize
        + uefi_auth
        + svsm_ovmf_vars::fd::parse(&[]).is_err() as usize
}
