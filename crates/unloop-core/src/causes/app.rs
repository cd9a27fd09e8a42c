//! The application failed on its own: a non-zero exit that no specific rule explains.

use crate::causes::config::retry_now;
use crate::subject::{About, Finding, Subject};
use crate::verdict::{Cause, CauseId, Confidence, Remedy};

/// Log lines quoted as evidence at most.
const MAX_LINES: usize = 3;

pub fn detect(s: &Subject) -> Vec<Finding> {
    let Some(run) = s.last_run() else {
        return Vec::new();
    };
    if run.exit_code == 0 || run.reason.as_deref() == Some("OOMKilled") {
        return Vec::new();
    }
    let lines = s.scan.highlights(MAX_LINES);
    let confidence = if lines.is_empty() {
        Confidence::Low
    } else {
        Confidence::Medium
    };
    let summary = match lines.last() {
        Some((_, l)) => format!(
            "the application exited with code {}: {}",
            run.exit_code,
            l.trim()
        ),
        None => format!(
            "the application exited with code {} and its log says nothing about why",
            run.exit_code
        ),
    };
    let mut cause = Cause::new(CauseId::AppError, confidence, summary);
    cause.evidence.extend(s.termination_evidence());
    for (_, l) in &lines {
        cause.evidence.push(s.log_evidence(l));
    }
    let remedies = vec![
        Remedy::inspect(
            CauseId::AppError,
            "read the crashed container's full log",
            Some(
                s.kubectl(&["logs"], s.pod_name)
                    .flag_value("-c", s.container())
                    .flag("--previous")
                    .into(),
            ),
        ),
        retry_now(s, CauseId::AppError),
    ];
    vec![Finding { cause, remedies, about: About::Container }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, ids, scenario};

    #[test]
    fn a_failed_exit_quotes_the_log() {
        let state = scenario("dependency-refused");
        let f = finding(&state, detect, CauseId::AppError);
        assert_eq!(f.cause.confidence, Confidence::Medium);
        assert!(cites(&f, "exit code 1"));
        assert!(f.remedies[0].command().unwrap().contains("--previous"));
    }

    #[test]
    fn an_exit_0_or_an_oom_kill_is_not_an_app_error() {
        let mut state = scenario("dependency-refused");
        testing::last_run(&mut state).exit_code = 0;
        assert!(ids(&state, detect).is_empty());
        assert!(ids(&scenario("oom-limit"), detect).is_empty());
        assert!(ids(&testing::healthy(), detect).is_empty());
    }

    #[test]
    fn a_silent_log_is_low_confidence() {
        let mut state = scenario("dependency-refused");
        testing::log(&mut state).text.clear();
        assert_eq!(ids(&state, detect), [(CauseId::AppError, Confidence::Low)]);
    }
}
