//! Drives the real `hanzo-db` binary on real files.

mod backends;
mod bench;
mod common;
mod errors;
mod roundtrip;
mod security;
mod workflow;
