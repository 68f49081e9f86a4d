//! Reviewing a change set before it runs (issue #16): what each resource change risks
//! (`risk.rs`) and whether the deploy guard lets a change set run (`guard.rs`). Pure; mode
//! `plan` and the deploy guard read it.

pub(crate) mod guard;
pub(crate) mod risk;
