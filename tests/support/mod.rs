//! Test support shared by the integration tests: the runner emulation, the DynamoDB backends
//! and the fault proxy. Each test binary uses part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cfnsim;
pub mod cli;
pub mod dynamo;
pub mod faults;
pub mod real_events;
pub mod runner;
pub mod soak;

/// A lock holder known only by its owner (library tests, no GitHub run).
pub fn holder(owner: &str) -> deploy_coordinator::lock::HolderInfo {
    deploy_coordinator::lock::HolderInfo {
        owner: owner.into(),
        correlation_id: owner.into(),
        ..Default::default()
    }
}
