//! Slack: one live card per deployment, a thread for what matters, and nothing ever lost.
//!
//! - [`card`], [`blocks`], [`mrkdwn`]: pure rendering within Slack's limits, escaping every
//!   untrusted string;
//! - [`client`]: the Web API (chat.postMessage / chat.update) and incoming webhooks, with
//!   errors classified by what to do next;
//! - [`notifier`]: the background queue the steps talk to (never blocks the deployment);
//! - [`deadletter`]: what could not be delivered, kept in the registry table for `slack retry`.

pub mod blocks;
pub(crate) mod card;
pub mod client;
pub mod deadletter;
pub(crate) mod live;
pub(crate) mod mrkdwn;
pub(crate) mod notifier;

pub use card::{Card, FailedResource, Holder, Outcome, Phase, PhaseKind, RootCause, ThreadEvent};
pub use live::LiveCard;
pub use notifier::{CardRef, DeadLetterStore, Delivery, Destination, Notifier, NotifierOptions};
pub mod retry;
