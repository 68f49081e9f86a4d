//! Deployment history (being written).
