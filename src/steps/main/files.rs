//! The runner's files as the main step writes them: a failed write is an error annotation and
//! fails the step at its end (the post step could not clean up without its state).

use tracing::warn;

use super::Step;
use crate::action::log;

impl Step {
    /// An error annotation, remembered for the Slack card.
    pub(super) fn error(&self, title: &str, message: &str) {
        log::error(title, message);
        self.ledger(|l| {
            l.first_error
                .get_or_insert_with(|| format!("{title}: {message}"));
        });
    }

    pub(super) fn output(&self, name: &str, value: &str) {
        if let Err(e) = self.files.set_output(name, value) {
            self.error("Cannot write a step output", &e.to_string());
            self.ledger(|l| l.write_failed = true);
        }
    }

    pub(super) fn state(&self, name: &str, value: &str) {
        if let Err(e) = self.files.save_state(name, value) {
            self.error("Cannot save state for the post step", &e.to_string());
            self.ledger(|l| l.write_failed = true);
        }
    }

    pub(super) fn summary(&self, markdown: &str) {
        if let Err(e) = self.files.append_summary(markdown) {
            warn!("cannot write the job summary: {e}");
        }
    }
}
