//! The process's memory allocator: mimalloc, tuned for a server that must
//! stay small.
//!
//! Why mimalloc rather than glibc's malloc: the ingest path allocates on the
//! request workers and frees on the writer thread, which in glibc takes the
//! other arena's lock on every free; and glibc, held to a low mmap
//! threshold to bound its arenas' growth, mapped and unmapped the buffers
//! of every 1000-event batch.
//!
//! Why the tuning: mimalloc keeps freed memory for a second before it hands
//! it back, and asks for transparent huge pages for its arenas; under the
//! batch benchmark that took the peak RSS past what the service promises.
//! Purging after 50 ms without huge pages keeps it within and kept the
//! gain. The measurements are in bench/PERFORMANCE.md.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// Position of `mi_option_purge_delay` in mimalloc 3's `mi_option_e`. The
/// bindings name only the options both major versions share;
/// `tests::option_position` fails if an update moves it.
const PURGE_DELAY: mi_option_t = 15;

/// Milliseconds freed memory stays with the allocator before it is returned.
const PURGE_AFTER_MS: std::ffi::c_long = 50;

/// Applies the tuning. Call first thing in `main`: mimalloc's option setter
/// is not thread safe.
pub fn tune() {
    // SAFETY: a plain setter of mimalloc's option table, called before any
    // other thread exists.
    unsafe { mi_option_set(PURGE_DELAY, PURGE_AFTER_MS) };
    // mimalloc reserved its first arena, asking for huge pages, before
    // `main`, so its own option comes too late; the process-wide switch
    // still holds for every page not yet touched, which is all of them.
    // Should it fail (an old kernel, a seccomp filter), huge pages merely
    // stay allowed.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag on this
    // process; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The position is right if it reads mimalloc 3's default purge delay;
    /// this test process never calls `tune`.
    #[test]
    fn option_position() {
        // SAFETY: a read of mimalloc's option table.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 1000);
    }
}
