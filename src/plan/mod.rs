//! Reviewing a change set before it runs (issue #16). Pure: what each resource change risks
//! (`risk.rs`), whether the deploy guard lets a change set run (`guard.rs`), the plan as rows a
//! reviewer reads (`review.rs`), and its words for the job summary and the pull-request comment
//! (`render.rs`). Mode plan and the deploy guard read it.

pub(crate) mod guard;
// Mode plan (steps/main/plan.rs) calls these in the next change.
#[cfg_attr(not(test), expect(dead_code, reason = "mode plan wires it next"))]
pub(crate) mod render;
#[cfg_attr(not(test), expect(dead_code, reason = "mode plan wires it next"))]
pub(crate) mod review;
pub(crate) mod risk;
