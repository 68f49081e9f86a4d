//! `history report`: history records → one self-contained HTML page with inline SVG charts,
//! per stack: deployments over time (duration, outcome, the estimate's range), the slowest
//! resources and their trend, estimated against actual, and lock waits.
//!
//! Pure: records in, a string out (the CLI reads the records and writes the file). Every
//! string that comes from users (stack names, logical IDs, correlation IDs) is escaped.
//!
//! - [`stats`]: the figures per stack;
//! - [`svg`]: scales, ticks, axes, escaping;
//! - [`charts`]: the four charts;
//! - [`page`]: the page around them;
//! - [`sample`]: realistic generated records (demo, tests, performance figures).

pub(crate) mod charts;
pub(crate) mod html;
pub mod sample;
pub(crate) mod stats;
pub(crate) mod svg;

pub use html::{PageOptions, render};
