//! Reading the step's inputs the way the runner exports them.
//!
//! The runner turns input `stack-name` into the variable `INPUT_STACK-NAME`: upper case, spaces
//! replaced by `_`, hyphens KEPT (so a shell cannot read it, but `std::env` can). Every declared
//! input is exported, a missing one as `""`. The runner does not trim; `@actions/core` does, and
//! users expect a trailing newline from a YAML block scalar not to matter, so we trim too.

use std::collections::BTreeMap;

/// The raw inputs of one step, trimmed, with empty values treated as absent.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    values: BTreeMap<String, String>,
}

/// The environment variable the runner uses for an input id.
pub(crate) fn env_name(input: &str) -> String {
    format!("INPUT_{}", input.replace(' ', "_").to_uppercase())
}

impl Inputs {
    /// Collects every `INPUT_*` variable from an environment listing.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let values = vars
            .into_iter()
            .filter_map(|(k, v)| {
                let name = k.as_ref().strip_prefix("INPUT_")?;
                Some((name.to_string(), v.as_ref().trim().to_string()))
            })
            .collect();
        Inputs { values }
    }

    /// Collects the inputs of this process. Variables that are not valid Unicode are skipped:
    /// the runner writes UTF-8, so such a variable was not set by it.
    pub fn from_process_env() -> Self {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// The trimmed value of an input, `None` when it is missing or blank.
    pub fn get(&self, input: &str) -> Option<&str> {
        let key = env_name(input);
        let key = key.strip_prefix("INPUT_").unwrap_or(&key);
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Inserts a value, as the runner would export it (used by tests and the CLI).
    pub fn set(&mut self, input: &str, value: &str) {
        let key = env_name(input);
        let key = key.strip_prefix("INPUT_").unwrap_or(&key).to_string();
        self.values.insert(key, value.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphenated_names_are_kept_and_values_trimmed() {
        let inputs = Inputs::from_vars([("INPUT_STACK-NAME", "  my-stack \n"), ("PATH", "/bin")]);
        assert_eq!(inputs.get("stack-name"), Some("my-stack"));
        assert_eq!(env_name("stack-name"), "INPUT_STACK-NAME");
        assert_eq!(env_name("with space"), "INPUT_WITH_SPACE");
    }

    #[test]
    fn blank_inputs_are_absent() {
        let inputs = Inputs::from_vars([("INPUT_TEMPLATE", "   "), ("INPUT_MODE", "")]);
        assert_eq!(inputs.get("template"), None);
        assert_eq!(inputs.get("mode"), None);
        assert_eq!(inputs.get("never-declared"), None);
    }
}
