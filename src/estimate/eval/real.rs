//! The real streams (tests/fixtures/real-events): their resources' timings, as a family's
//! durations, and the multi-operation histories of real stacks (streams 22–26), replayed as
//! they happened. The caller reads the files; this module only parses texts.

use std::collections::HashMap;

use super::engine::Deployment;
use crate::estimate::changes::of_record;
use crate::history::events::{parse_describe_stack_events, split_operations, trace};

/// The streams' texts: every `*.json` of `dir` but its `manifest.json`, in name order
/// (tests/fixtures/real-events for the example and the test).
pub fn read_streams(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "manifest.json")
        })
        .collect();
    files.sort();
    files.iter().map(std::fs::read_to_string).collect()
}

/// Completed resource durations in the real streams, by (type, action).
#[derive(Debug, Default, Clone)]
pub struct Timings {
    by: HashMap<(String, String), Vec<f64>>,
}

impl Timings {
    /// From `describe-stack-events` texts (unreadable ones are skipped: the corpus has one
    /// event with a corrupted key, which the parser skips on its own).
    pub fn from_streams(texts: &[String]) -> Timings {
        let mut t = Timings::default();
        for text in texts {
            let Ok((events, _)) = parse_describe_stack_events(text) else {
                continue;
            };
            for op in split_operations(&events) {
                let Some(tr) = trace(&op) else { continue };
                for r in tr.resources.iter().filter(|r| r.completed()) {
                    let Some(f) = r.finished_at else { continue };
                    let d = (f - r.started_at).num_milliseconds() as f64 / 1000.0;
                    t.by.entry((r.resource_type.clone(), r.action.clone()))
                        .or_default()
                        .push(d.max(0.1));
                }
            }
        }
        t
    }

    pub(crate) fn of(&self, rtype: &str, action: &str) -> Option<&[f64]> {
        self.by
            .get(&(rtype.to_string(), action.to_string()))
            .map(Vec::as_slice)
    }

    /// How many durations (for the report line).
    pub fn len(&self) -> usize {
        self.by.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Each text's finished operations as deployments, oldest first (one history per text; texts
/// with fewer than `min_ops` finished operations are left out).
pub(crate) fn histories(texts: &[String], min_ops: usize) -> Vec<(String, Vec<Deployment>)> {
    let mut out = Vec::new();
    for text in texts {
        let Ok((events, _)) = parse_describe_stack_events(text) else {
            continue;
        };
        let mut deployments = Vec::new();
        let mut name = String::new();
        for op in split_operations(&events) {
            let Some(tr) = trace(&op) else { continue };
            let Some((_, finished_at)) = tr.finished else {
                continue;
            };
            name = tr.stack.clone();
            // The streams hold no change sets: the one each operation would have had.
            let change_set = tr.to_record("real").map(|r| of_record(&r));
            deployments.push(Deployment {
                change_set,
                events: op,
                started_at: tr.started_at,
                finished_at,
            });
        }
        if deployments.len() >= min_ops {
            out.push((name, deployments));
        }
    }
    out
}
