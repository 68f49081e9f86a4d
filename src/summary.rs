//! The job summary: what a person opening the run sees first.
//!
//! Pure: Markdown from a finished stack operation, no I/O. Every text that came from AWS or the
//! template (reasons, output values) is escaped for Markdown tables, and kept far below the
//! runner's 1 MiB limit.

use crate::config::Config;
use crate::duration;
use crate::stack::StackResult;

/// Escapes text for a Markdown table cell: pipes, line breaks, and HTML (which GitHub renders).
pub fn cell(text: &str) -> String {
    let text: String = text.chars().take(500).collect();
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// The summary of one deployment.
pub fn render(correlation_id: &str, config: &Config, result: &StackResult) -> String {
    let icon = if result.outcome.is_success() {
        "✅"
    } else {
        "❌"
    };
    let (done, total) = result.progress;
    let mut md = format!(
        "### {icon} {} `{}`: {}\n\n| | |\n|---|---|\n| correlation ID | `{}` |\n| mode | {} |\n| lock key | `{}` |\n| stack status | {} |\n| duration | {} |\n| resources | {done}/{total} |\n",
        cell(&config.stack_name),
        correlation_id,
        result.outcome,
        correlation_id,
        config.mode.as_str(),
        cell(&config.lock_key),
        cell(result.stack_status.as_deref().unwrap_or("unknown")),
        duration::human(result.duration),
    );
    if let (Some(resource), Some(reason)) = (&result.failed_resource, &result.failure_reason) {
        md.push_str(&format!(
            "\n**Root cause:** `{}` failed: {}\n",
            cell(resource),
            cell(reason)
        ));
    }
    if !result.outputs.is_empty() {
        md.push_str("\n| stack output | value |\n|---|---|\n");
        for (key, value) in &result.outputs {
            md.push_str(&format!("| {} | {} |\n", cell(key), cell(value)));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("a|b\nc <script>&"), "a\\|b c &lt;script&gt;&amp;");
        assert_eq!(cell(&"x".repeat(600)).len(), 500);
    }
}
