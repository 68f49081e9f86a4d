//! Reviewing a change set before it runs (issue #16): what each resource change risks. Pure;
//! mode `plan` and the deploy guard read it.

pub(crate) mod risk;
