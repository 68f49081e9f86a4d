//! The corpus of real CloudFormation event streams (tests/fixtures/real-events) and what a
//! person reading each one says about it (its manifest.json).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One operation of a stream, as its reader described it.
#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub stack_name: String,
    pub stack_id: String,
    pub kind: String,
    pub start_event_id: Option<String>,
    #[serde(default)]
    pub operation_ids: Vec<String>,
    pub final_status: Option<String>,
    pub outcome: Option<String>,
    pub failed_resource: Option<String>,
    pub failure_reason: Option<String>,
    pub root_cause_rule: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub resource_durations: BTreeMap<String, f64>,
    /// Set by [`corpus`]: another operation of this stack follows this one in the recording
    /// before it reached a terminal status (it took the stack over).
    #[serde(skip)]
    interrupted: bool,
}

impl Expected {
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// The reader could tell the root cause (false for recordings cut before it).
    pub fn cause_determinable(&self) -> bool {
        !self
            .root_cause_rule
            .as_deref()
            .is_some_and(|r| r.starts_with("not determinable"))
    }

    /// The resources the reader's warnings are about (their first word; the terminal
    /// status's own reason is not about one resource).
    pub fn warned_resources(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .warnings
            .iter()
            .filter_map(|w| w.split_whitespace().next())
            .filter(|w| *w != "terminal")
            .map(str::to_string)
            .collect();
        names.dedup();
        names
    }
}

#[derive(Debug, Deserialize)]
struct Entry {
    file: String,
    operations: Vec<Expected>,
}

/// One recorded stream.
#[derive(Debug, Clone)]
pub struct Stream {
    pub file: String,
    pub path: PathBuf,
    pub text: String,
    pub operations: Vec<Expected>,
}

impl Stream {
    /// The recording holds the first event of at least one of its operations.
    pub fn has_start(&self) -> bool {
        self.operations.iter().any(|op| {
            op.start_event_id
                .as_deref()
                .is_some_and(|id| self.text.contains(&format!("\"{id}\"")))
        })
    }
}

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-events")
}

/// Every stream of the corpus with its reader's account, in the manifest's order.
pub fn corpus() -> Vec<Stream> {
    let manifest = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest.json");
    let entries: Vec<Entry> = serde_json::from_str(&manifest).expect("manifest.json parses");
    entries
        .into_iter()
        .map(|mut e| {
            let path = dir().join(&e.file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            let n = e.operations.len();
            for i in 0..n {
                let next_same_stack = e.operations[i + 1..]
                    .iter()
                    .any(|o| o.stack_id == e.operations[i].stack_id);
                let op = &mut e.operations[i];
                op.interrupted = op.final_status.is_none() && next_same_stack;
            }
            Stream {
                file: e.file,
                path,
                text,
                operations: e.operations,
            }
        })
        .collect()
}
