//! Test support shared by the integration tests: the runner emulation and the emulators.
//! Each test binary uses part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cfnsim;
pub mod cli;
pub mod dynamo;
pub mod real_events;
pub mod runner;
