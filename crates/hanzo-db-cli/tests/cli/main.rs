//! Drives the real `hanzo-db` binary on real files.

mod access;
mod backends;
mod bench;
mod common;
mod errors;
mod migrate;
mod roundtrip;
mod security;
mod workflow;
