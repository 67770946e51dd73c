//! SIGHUP as a flag: the conventional "re-read your configuration" signal, caught by a
//! handler that only sets an atomic (the one thing a signal handler may safely do) and
//! polled by the `auth-reload` thread, which re-reads `--auth_file`. On platforms without
//! SIGHUP (Windows) nothing is installed and the flag never rises.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler, cleared by [`take`].
static RECEIVED: AtomicBool = AtomicBool::new(false);

/// Installs the handler; `false` when the platform has no SIGHUP or refused it.
pub fn install() -> bool {
    #[cfg(unix)]
    {
        extern "C" fn on_sighup(_signal: libc::c_int) {
            RECEIVED.store(true, Ordering::SeqCst);
        }
        let handler = on_sighup as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and
        // replaces the default action of SIGHUP (ending the process) for this process only.
        unsafe { libc::signal(libc::SIGHUP, handler) != libc::SIG_ERR }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether SIGHUP arrived since the last call.
pub fn take() -> bool {
    RECEIVED.swap(false, Ordering::SeqCst)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_raised_sighup_is_seen_once() {
        assert!(install());
        // SAFETY: raising a signal whose handler is installed just above.
        assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
        assert!(take());
        assert!(!take());
    }
}
