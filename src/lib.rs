//! deploy-coordinator: a GitHub container Action that makes CloudFormation deployments safe to
//! run from many workflows at once.
//!
//! Start reading at `steps/main/mod.rs` and `steps/post.rs`: each is the whole story of one step
//! of the action. The modules below hold the details, each behind one concern; `docs/architecture.md`
//! is the map.

#![warn(unreachable_pub)]

pub mod action;
pub(crate) mod aws;
pub mod cli;
pub mod config;
pub mod context;
pub(crate) mod correlation;
pub(crate) mod doctor;
pub mod duration;
pub mod estimate;
pub mod github;
pub mod history;
pub mod lock;
pub(crate) mod narrate;
pub mod outputs;
pub(crate) mod plan;
pub mod registry;
pub(crate) mod shutdown;
pub mod slack;
pub mod stack;
pub mod steps;
pub mod summary;
