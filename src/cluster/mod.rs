//! The cluster: how symmetric nodes find each other and share the data.
//!
//! - [`ring`]: the CRC32 consistent-hash ring (150 virtual nodes per node) that gives each
//!   series an ordered preference list of owners (primary, then replicas).
pub mod ring;
