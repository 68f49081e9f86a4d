//! Deployment history: what past operations on a stack took, resource by resource.
//!
//! - [`record`]: the interchange record (registry items, `history export`/`import`, the
//!   estimator's input), with validation.
//! - [`events`]: CloudFormation stack events (the AWS CLI's JSON shape) into operations,
//!   resource timings and records. Pure.
//! - [`store`]: records in the registry table.
//! - [`deployed`]: the last commit deployed under a lock key (`forbid-older`).

pub mod deployed;
pub mod events;
pub mod page;
pub mod record;
pub mod store;

pub use deployed::Deployed;
pub use events::{StackEvent, Trace, parse_describe_stack_events, split_operations, trace};
pub use record::{
    HistoryRecord, Operation, Outcome, PredictedDuration, ResourceTiming, parse_records,
};
