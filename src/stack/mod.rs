//! CloudFormation: deploying through change sets and following operations to their end.
//!
//! Pure logic (no I/O, unit-tested): [`status`] (what a status means), [`events`] (which
//! events are new and what they say), [`poll`] (when to poll next). One thin layer talks to
//! AWS: [`client`]. On top of them: [`guard`] (wait while someone else deploys), [`deploy`]
//! (mode `deploy`) and [`monitor`] (follow an operation, modes `monitor` and `lock`).

pub mod client;
pub mod events;
pub mod poll;
pub mod status;

pub use status::Outcome;
