//! The one colour palette of every terminal report (diagnose and audit). Without colour every
//! style is plain, so the text is the same either way.

use owo_colors::Style;
use unloop_audit::Severity;
use unloop_core::verdict::Confidence;

pub(crate) struct Palette {
    pub title: Style,
    /// What is wrong: a crash, an audit error.
    pub bad: Style,
    pub warning: Style,
    /// Labels of the diagnose report; audit's `info` severity.
    pub label: Style,
    pub dim: Style,
    /// Commands and YAML to paste.
    pub cmd: Style,
    pub high: Style,
    pub medium: Style,
}

impl Palette {
    pub fn new(color: bool) -> Self {
        if !color {
            let s = Style::new();
            return Palette {
                title: s,
                bad: s,
                warning: s,
                label: s,
                dim: s,
                cmd: s,
                high: s,
                medium: s,
            };
        }
        Palette {
            title: Style::new().bold(),
            bad: Style::new().red().bold(),
            warning: Style::new().yellow().bold(),
            label: Style::new().cyan(),
            dim: Style::new().dimmed(),
            cmd: Style::new().green(),
            high: Style::new().red(),
            medium: Style::new().yellow(),
        }
    }

    pub fn confidence(&self, c: Confidence) -> Style {
        match c {
            Confidence::High => self.high,
            Confidence::Medium => self.medium,
            Confidence::Low => self.dim,
        }
    }

    pub fn severity(&self, s: Severity) -> Style {
        match s {
            Severity::Error => self.bad,
            Severity::Warning => self.warning,
            Severity::Info => self.label,
        }
    }
}
