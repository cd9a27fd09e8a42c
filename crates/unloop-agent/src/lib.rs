//! `unloop agent`: the diagnosis always on, inside the cluster. Watches pods, events, nodes and
//! workloads (one watch per kind, no polling), diagnoses a workload when one of its containers
//! enters trouble and again when its evidence changes, and publishes what it found: a
//! `CrashDiagnosis` resource, an Event on the pod, Prometheus metrics and webhook notifications.
//!
//! Decisions are pure and tested directly; the I/O is in [`agent`]:
//! - [`track`]: when to diagnose and when to resolve (debounce, re-diagnosis, recovery).
//! - [`notify`]: at most one notification per workload and cause, the bodies, retries.
//! - [`lease`]: leader election on a Lease.
//! - [`view`]: what the watches keep of each object, and the state one diagnosis reads.
//! - [`crd`]: the `CrashDiagnosis` resource, its schema generated from the types.
//! - [`outgoing`]: the one gate of what is published: redacted, visible, bounded.
//! - [`metrics`]: the counters, their Prometheus text, `/metrics`, `/healthz`, `/readyz`.

pub mod agent;
pub mod crd;
pub mod lease;
pub mod metrics;
pub mod notify;
pub mod outgoing;
pub mod track;
pub mod view;

pub use agent::{AgentError, LeaseOptions, LogSink, Options, run};
