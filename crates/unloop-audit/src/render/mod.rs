//! Renderers: for people (human), for programs (json), for code-scanning UIs (SARIF 2.1.0) and
//! for CI test reports (JUnit XML). Each is a pure function from a report to text.

mod human;
mod json;
mod junit;
mod sarif;

use crate::AuditReport;
use crate::check::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Junit,
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub color: bool,
    /// Findings at or above this severity fail the run (exit 1); JUnit marks them as failures.
    pub fail_on: Severity,
    /// The unloop version, for SARIF's tool driver.
    pub tool_version: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            fail_on: Severity::Warning,
            tool_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

pub fn render(report: &AuditReport, format: Format, opts: &RenderOptions) -> String {
    match format {
        Format::Human => human::render(report, opts),
        Format::Json => json::render(report, opts),
        Format::Sarif => sarif::render(report, opts),
        Format::Junit => junit::render(report, opts),
    }
}

/// `3 errors`, `1 warning`.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}
