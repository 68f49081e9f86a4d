//! The GitHub Actions runner contract, and nothing else.
//!
//! Everything the action tells the runner goes through here: inputs arrive as `INPUT_<NAME>`
//! environment variables (hyphens kept), outputs and state leave through the file commands
//! (`GITHUB_OUTPUT`, `GITHUB_STATE`), the job summary through `GITHUB_STEP_SUMMARY`, and
//! annotations, groups and masks as workflow commands on stdout. The facts this module relies on
//! are in `../shared/reference/github-actions-contract.md`.
//!
//! Outside GitHub Actions (the CLI in a terminal, `GITHUB_ACTIONS` unset) the same calls print
//! plainly and write no files, so operator commands share the code path without printing
//! `::warning::` noise.

pub(crate) mod files;
pub(crate) mod inputs;
pub mod log;

pub use files::{FileCommandError, FileCommands};
pub use inputs::Inputs;
pub use log::Log;
