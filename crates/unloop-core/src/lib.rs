//! unloop's core: pure functions from cluster state, log text and a clock value to diagnoses.
//!
//! Nothing here performs I/O: the state arrives as a [`state::ClusterState`] (from a live cluster
//! or a snapshot bundle, see the `unloop-source` crate) and leaves as a [`diagnose::Report`].

pub mod backoff;
pub mod causes;
pub mod debug;
pub mod diagnose;
pub mod duration;
pub mod exit;
pub mod follow;
pub mod gap;
pub mod jobs;
pub mod kb;
pub mod logscan;
pub mod malformed;
pub mod quantity;
pub mod redact;
pub mod refs;
pub mod resources;
pub mod restart;
pub mod roots;
pub mod selector;
pub mod shell;
pub mod slim;
pub mod state;
pub mod status;
pub mod subject;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
pub mod verdict;
pub mod workload;

pub use diagnose::{Diagnosis, Query, Report, Target, diagnose};
pub use state::ClusterState;
pub use verdict::{Cause, CauseId, Confidence, Evidence, Remedy, RemedyKind};
