//! Reviewing a change set before it runs (issue #16). Pure: what each resource change risks
//! (`risk.rs`), whether the deploy guard lets a change set run (`guard.rs`), the plan as rows a
//! reviewer reads (`review.rs`), and its words for the job summary and the pull-request comment
//! (`render.rs`). Mode plan and the deploy guard read it.

pub(crate) mod guard;
pub(crate) mod render;
pub(crate) mod review;
pub(crate) mod risk;
