//! The action's two steps, each a story in its own folder or file: `main/` runs first (inputs,
//! lock, deploy or follow, outputs, release), `post.rs` runs after the job's other steps, in a
//! new container, also when they failed or were cancelled. `shared.rs` is what both do alike.

pub mod main;
pub mod post;
mod shared;
