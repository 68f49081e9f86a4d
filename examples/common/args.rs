//! Command-line options of the benchmark examples: `--name value`, with a default.

/// The value after the last `name` on the command line (so a wrapper's defaults can be
/// overridden by options given after them), or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .rposition(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}
