//! Drives the real `hanzo-db` binary on real files.

mod backends;
mod access;
mod bench;
mod common;
mod errors;
mod migrate;
mod roundtrip;
mod security;
mod workflow;
