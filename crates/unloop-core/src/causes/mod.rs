//! The cause rules. Each module looks at one troubled container (a `Subject`) and returns the
//! causes it recognises, each with its evidence and remedies, and carries its own unit tests on
//! captured pods. A new cause id is one line of `verdict::causes!` and a row of docs/causes.md; a
//! new module is one more name in `rules!` below.

/// Declares every rule module once: the module and its place in the rules `detect` runs. The
/// order does not rank anything (see `diagnose::ranking`); it is only the order findings arrive in.
macro_rules! rules {
    ($($module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every rule, each a `detect` function of one module.
        const RULES: &[fn(&Subject) -> Vec<Finding>] = &[$($module::detect,)+];
    };
}

rules! {
    image,
    config,
    entrypoint,
    oom,
    node,
    probe,
    dependency,
    rollout,
    pending,
    runtime,
    app,
}

use crate::subject::{Finding, Subject};

/// Every rule's findings for one container, unranked.
pub fn detect(s: &Subject) -> Vec<Finding> {
    RULES.iter().flat_map(|rule| rule(s)).collect()
}
