//! `scripts/pin-image`, the release workflow's digest step: given a pushed image's digest it
//! rewrites action.yml's `runs.image` and nothing else, and the result is still a valid action
//! (check-jsonschema's GitHub Actions schema, as `.ci/run` checks it). A registry is not
//! available here, so the workflow step itself is this script; these tests are its dry run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DIGEST: &str = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000abc";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the repository's action.yml in a temp dir (the script must never touch the real
/// one in a test).
fn action_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("action.yml");
    std::fs::copy(repo().join("action.yml"), &path).expect("copy action.yml");
    (dir, path)
}

fn pin(file: &Path, reference: &str) -> Output {
    Command::new(repo().join("scripts/pin-image"))
        .arg("--file")
        .arg(file)
        .arg(reference)
        .output()
        .expect("run scripts/pin-image")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// check-jsonschema from the project's venv (scripts/setup), else from PATH.
fn check_jsonschema(file: &Path) -> Output {
    let venv = repo().join(".venv/bin/check-jsonschema");
    let program = if venv.exists() {
        venv
    } else {
        PathBuf::from("check-jsonschema")
    };
    Command::new(&program)
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (scripts/setup installs it into .venv)",
                program.display()
            )
        })
}

#[test]
fn a_digest_rewrites_the_image_line_and_nothing_else() {
    let (_dir, file) = action_copy();
    let before = std::fs::read_to_string(&file).unwrap();
    let reference = format!("ghcr.io/octo-org/deploy-coordinator@{DIGEST}");
    let out = pin(&file, &reference);
    assert!(out.status.success(), "pin-image: {}", stderr(&out));
    let after = std::fs::read_to_string(&file).unwrap();

    let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(old.len(), new.len(), "no line added or removed");
    let changed: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
    assert_eq!(changed.len(), 1, "exactly one line changes: {changed:?}");
    let line = changed[0];
    assert!(
        old[line].trim_start().starts_with("image: docker://"),
        "{}",
        old[line]
    );
    assert_eq!(new[line], format!("  image: docker://{reference}"));
    assert_eq!(before.ends_with('\n'), after.ends_with('\n'));

    let check = check_jsonschema(&file);
    assert!(
        check.status.success(),
        "the pinned action.yml must still pass the GitHub Actions schema: {}{}",
        String::from_utf8_lossy(&check.stdout),
        stderr(&check)
    );
}

#[test]
fn pinning_again_replaces_the_digest_and_the_same_digest_changes_nothing() {
    let (_dir, file) = action_copy();
    let first = format!("ghcr.io/octo-org/deploy-coordinator@{DIGEST}");
    assert!(pin(&file, &first).status.success());
    let pinned = std::fs::read(&file).unwrap();
    let again = pin(&file, &format!("docker://{first}"));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        pinned,
        "the same digest is a no-op"
    );
    let fork = format!("ghcr.io/a-fork/deploy-coordinator@{OTHER}");
    assert!(pin(&file, &fork).status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("  image: docker://{fork}\n")),
        "{text}"
    );
    assert!(!text.contains(DIGEST));
}

#[test]
fn references_that_are_not_pinned_by_a_full_digest_are_refused() {
    let (_dir, file) = action_copy();
    let before = std::fs::read(&file).unwrap();
    let short = &DIGEST[..DIGEST.len() - 1];
    let upper = DIGEST.to_uppercase().replace("SHA256", "sha256");
    for (reference, why) in [
        ("ghcr.io/octo-org/deploy-coordinator:v1", "no digest"),
        ("ghcr.io/octo-org/deploy-coordinator", "no digest"),
        (
            &format!("ghcr.io/octo-org/deploy-coordinator@{short}"),
            "64 hex digits",
        ),
        (
            &format!("ghcr.io/octo-org/deploy-coordinator@{upper}"),
            "lowercase",
        ),
        (
            &format!("ghcr.io/octo-org/deploy-coordinator:v1@{DIGEST}"),
            "tag and a digest",
        ),
        (
            "ghcr.io/octo-org/deploy-coordinator@sha512:abcd",
            "only sha256",
        ),
        (
            &format!("ghcr.io/Octo-Org/deploy-coordinator@{DIGEST}"),
            "lowercase",
        ),
        (
            &format!("deploy-coordinator@{DIGEST}"),
            "REGISTRY/OWNER/NAME",
        ),
    ] {
        let out = pin(&file, reference);
        assert_eq!(out.status.code(), Some(2), "{reference}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(why),
            "{reference}: the error should say '{why}': {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "{reference}: file untouched"
        );
    }
}

#[test]
fn only_the_image_key_of_the_runs_block_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("action.yml");
    // `image:` elsewhere (an input's description, a nested mapping) is not runs.image.
    let text = "name: x\ndescription: y\ninputs:\n  image:\n    description: \"image: docker://not-this\"\n\
                runs:\n  using: docker\n  # image: docker://a-comment\n  image: docker://ghcr.io/o/n:v1\n  env:\n    image: kept\n\
                  post-if: always()\n";
    std::fs::write(&file, text).unwrap();
    let reference = format!("ghcr.io/o/n@{DIGEST}");
    let out = pin(&file, &reference);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text.replace(
            "  image: docker://ghcr.io/o/n:v1\n",
            &format!("  image: docker://{reference}\n")
        )
    );
}

#[test]
fn a_file_without_exactly_one_runs_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("ghcr.io/o/n@{DIGEST}");
    for (text, found) in [
        ("runs:\n  using: docker\n", "found 0"),
        (
            "runs:\n  using: docker\n  image: a\n  image: b\n",
            "found 2 (lines: 3, 4)",
        ),
        (
            "inputs:\n  image:\n    description: d\nruns:\n  using: node20\n",
            "found 0",
        ),
    ] {
        let file = dir.path().join("action.yml");
        std::fs::write(&file, text).unwrap();
        let out = pin(&file, &reference);
        assert_eq!(out.status.code(), Some(1), "{text:?}");
        assert!(stderr(&out).contains(found), "{text:?}: {}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
    let out = pin(&dir.path().join("missing.yml"), &reference);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
