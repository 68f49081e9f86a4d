//! Tidiness a reader relies on, checked over the whole source tree: every module says in its
//! first line what it is for, and a folder's root is its `mod.rs` (no `x.rs` beside `x/`).

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    files
}

#[test]
fn every_module_starts_with_a_doc_comment() {
    let missing: Vec<_> = all_sources()
        .into_iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` first line: {missing:?}"
    );
}

#[test]
fn no_module_file_stands_beside_its_folder() {
    let beside: Vec<_> = all_sources()
        .into_iter()
        .filter(|f| f.with_extension("").is_dir())
        .collect();
    assert!(
        beside.is_empty(),
        "use x/mod.rs instead of x.rs beside x/: {beside:?}"
    );
}
