//! The GitHub API, for what the coordinator needs from it: whether a run attempt is completed
//! (the lock's second staleness rule). Later: deployment statuses.

mod runs;

pub use runs::GitHubRuns;
