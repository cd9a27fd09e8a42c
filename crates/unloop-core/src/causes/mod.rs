//! The cause rules. Each module looks at one troubled container (a `Subject`) and returns the
//! causes it recognises, each with its evidence and remedies. Adding a cause touches one module.

pub mod app;
pub mod config;
pub mod dependency;
pub mod entrypoint;
pub mod image;
pub mod node;
pub mod oom;
pub mod probe;
pub mod rollout;
pub mod runtime;

use crate::subject::{Finding, Subject};

/// Every rule's findings for one container, unranked.
pub fn detect(s: &Subject) -> Vec<Finding> {
    let rules: [fn(&Subject) -> Vec<Finding>; 10] = [
        image::detect,
        config::detect,
        entrypoint::detect,
        oom::detect,
        node::detect,
        probe::detect,
        dependency::detect,
        rollout::detect,
        runtime::detect,
        app::detect,
    ];
    rules.iter().flat_map(|rule| rule(s)).collect()
}
