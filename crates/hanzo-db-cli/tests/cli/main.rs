//! Drives the real `hanzo-db` binary on real files.

mod access;
mod bench;
mod common;
mod errors;
mod roundtrip;
mod security;
mod workflow;
