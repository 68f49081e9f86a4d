//! CloudFormation: deploying through change sets and following operations to their end.
//!
//! Pure logic (no I/O, unit-tested): [`status`] (what a status means), [`events`] (one event
//! and what it says), [`cursor`] (which events are new), [`tracker`] (one operation followed
//! to its end), [`poll`] (when to poll next). One thin layer talks to
//! AWS: [`client`]. On top of them: [`guard`] (wait while someone else deploys), [`deploy`]
//! (mode `deploy`) and [`monitor`] (follow an operation; modes `monitor` and `lock`).

pub(crate) mod cause;
pub(crate) mod chain;
pub(crate) mod client;
pub(crate) mod cursor;
pub(crate) mod deploy;
pub(crate) mod events;
pub(crate) mod guard;
pub(crate) mod monitor;
pub mod planner;
pub mod poll;
pub(crate) mod preview;
pub mod result;
pub mod status;
pub mod tracker;

pub use client::{ClientError, ErrorKind, StackClient, StackInfo};
pub use cursor::Baseline;
pub use deploy::{ChangeSetSource, DeployRequest, deploy};
pub use events::Event;
pub use guard::{GuardError, SettleWait, Settled, wait_until_settled};
pub use monitor::{
    MonitorEvent, MonitorSettings, Reconstruction, StackError, monitor, reconstruct_since,
};
pub use poll::PollSettings;
pub use result::{CancelReport, StackResult};
pub use status::Outcome;
pub use tracker::ResourceTiming;
