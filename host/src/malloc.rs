//! Allocator settings for a host that moves image data in megabyte-sized buffers.
//!
//! Every key-value `get`/`set` of an image chunk and every body chunk allocates
//! about a megabyte (in wasmtime's lifting and lowering, in rusqlite and in SQLite).
//! glibc serves such sizes with a fresh `mmap` and returns them with `munmap`
//! (and trims the heap top once 128 KiB are free), so each chunk paid for
//! hundreds of page faults and page clears: measured on a 2-core VM, 4
//! concurrent 256 MiB downloads went from ~1.4 to ~2.0 GiB/s with these set.
//! Larger buffers (up to the 128 MiB host-buffered limit) still get their own
//! mapping, and a heap with much free memory at its top is still trimmed.

/// Allocations at least this large get their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 16 << 20;

/// Free memory at the heap top beyond this is given back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 128 << 20;

/// Applies the settings; call before any thread starts. A no-op off glibc.
pub fn tune_for_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called once at start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
