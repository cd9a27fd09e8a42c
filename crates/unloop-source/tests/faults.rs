//! The live reader against an API server that misbehaves, without a cluster: a fake API server on
//! loopback serves a scenario's captured bundle as paged lists, and the fault proxy
//! (`unloop-faults`) sits between it and the reader, throttling, failing, resetting, stalling and
//! cutting answers short by rule. Each test is bounded by a Tokio timeout well above `--timeout`:
//! a hang fails it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use unloop_core::state::{ClusterState, GapAbout, GapReason};
use unloop_faults::{FakeApi, Fault, Proxy, Rule, Seen, Upstream};
use unloop_source::SourceError;
use unloop_source::live::{self, LiveOptions};

const SCENARIO: &str = "oom-limit";
/// Objects per page from the fake: the scenario's events span several pages.
const PAGE: usize = 5;

fn captured(name: &str) -> ClusterState {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(name)
        .join("bundle.json.gz");
    unloop_source::bundle::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Run {
    state: Result<ClusterState, SourceError>,
    elapsed: Duration,
    seen: Vec<Seen>,
    now: jiff::Timestamp,
}

impl Run {
    fn state(&self) -> &ClusterState {
        match &self.state {
            Ok(s) => s,
            Err(e) => panic!("the read failed: {e}\nrequests: {:#?}", self.seen),
        }
    }

    /// The cause diagnosis names first.
    fn cause(&self) -> String {
        let report = unloop_core::diagnose(
            self.state(),
            &unloop_core::diagnose::Query::default(),
            self.now,
        );
        let v = serde_json::to_value(&report).expect("a report serialises");
        v["diagnoses"][0]["causes"][0]["id"]
            .as_str()
            .unwrap_or("none")
            .to_string()
    }

    fn gaps(&self) -> Vec<String> {
        self.state()
            .gaps
            .iter()
            .filter(|g| !matches!(g.about, GapAbout::KubeletConfig { .. }))
            .map(|g| format!("{}: {}", g.what(), g.why))
            .collect()
    }

    /// Requests whose path contains `s`.
    fn requests(&self, s: &str) -> usize {
        self.seen.iter().filter(|r| r.path.contains(s)).count()
    }
}

/// Reads the scenario's namespace through the proxy with `rules`, under `timeout`.
async fn read_through(rules: Vec<Rule>, timeout: Duration) -> Run {
    read_state(captured(SCENARIO), rules, timeout).await
}

/// Reads `state`, served by the fake, through the proxy with `rules`, under `timeout`.
async fn read_state(state: ClusterState, rules: Vec<Rule>, timeout: Duration) -> Run {
    let now = state.captured_at.expect("a bundle records its time");
    let fake = Arc::new(FakeApi::from_state(&state, PAGE));
    let proxy = Proxy::start(Upstream::Fake(fake), rules)
        .await
        .expect("the proxy listens");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, proxy.kubeconfig(SCENARIO)).expect("kubeconfig");
    let opts = LiveOptions {
        kubeconfig: Some(kubeconfig),
        timeout,
        ..LiveOptions::default()
    };
    let start = Instant::now();
    let read = async {
        let live = live::connect(&opts).await?;
        live.read(&opts, now, &|_| {}).await
    };
    // Well above the deadline: only a hang gets here.
    let state = tokio::time::timeout(timeout * 3 + Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("the read hung past {timeout:?}: {:#?}", proxy.seen()));
    Run {
        state,
        elapsed: start.elapsed(),
        seen: proxy.seen(),
        now,
    }
}

const TIMEOUT: Duration = Duration::from_secs(20);

/// The baseline every faulty run is held to: the same pods, events and cause.
async fn baseline() -> Run {
    read_through(Vec::new(), TIMEOUT).await
}

fn assert_same_as_baseline(run: &Run, base: &Run) {
    let names = |s: &ClusterState| -> Vec<String> {
        let mut v: Vec<String> = s
            .pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(run.state()), names(base.state()));
    assert_eq!(run.state().events.len(), base.state().events.len());
    assert_eq!(run.state().logs, base.state().logs);
    assert_eq!(run.cause(), "oom-limit-too-low");
    assert!(run.gaps().is_empty(), "{:#?}", run.gaps());
}

#[tokio::test]
async fn without_faults_the_captured_state_comes_back_listed_once_per_kind() {
    let run = baseline().await;
    let captured = captured(SCENARIO);
    assert_eq!(run.state().pods.len(), captured.pods.len());
    assert_eq!(run.state().events.len(), captured.events.len());
    assert!(run.state().events.len() > PAGE, "events should span pages");
    assert_eq!(run.cause(), "oom-limit-too-low");
    assert!(run.gaps().is_empty(), "{:#?}", run.gaps());
    // One list per kind: each list URL is asked for once without a continue token.
    let mut firsts: Vec<&str> = run
        .seen
        .iter()
        .filter(|r| r.path.contains("limit=") && !r.path.contains("continue="))
        .map(|r| r.path.split('?').next().unwrap_or_default())
        .collect();
    let n = firsts.len();
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), n, "a kind was listed twice: {:#?}", run.seen);
    assert!(run.requests("continue=") >= 4, "events were not paged");
}

#[tokio::test]
async fn throttling_is_retried_after_the_servers_retry_after() {
    let base = baseline().await;
    let run = read_through(
        vec![
            Rule::new(Fault::Throttle {
                retry_after_secs: 1,
            })
            .on("/pods?")
            .times(2),
        ],
        TIMEOUT,
    )
    .await;
    assert_same_as_baseline(&run, &base);
    assert_eq!(run.requests("/pods?"), 3);
    assert!(run.elapsed >= Duration::from_secs(2), "{:?}", run.elapsed);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let base = baseline().await;
    let run = read_through(
        vec![
            Rule::new(Fault::Status(500)).on("/pods?").times(2),
            Rule::new(Fault::Status(502)).on("/events?").times(1),
            Rule::new(Fault::Status(503)).on("/deployments?").times(2),
            Rule::new(Fault::Status(504)).on("/replicasets?").times(1),
            Rule::new(Fault::Status(503)).on("/log?").times(1),
        ],
        TIMEOUT,
    )
    .await;
    assert_same_as_baseline(&run, &base);
    assert_eq!(run.requests("/deployments?"), 3);
}

#[tokio::test]
async fn connection_resets_are_retried() {
    let base = baseline().await;
    let run = read_through(
        vec![
            Rule::new(Fault::Reset).on("/pods?").times(2),
            Rule::new(Fault::Reset).on("/nodes?").times(1),
            Rule::new(Fault::Reset).on("/log?").times(1),
        ],
        TIMEOUT,
    )
    .await;
    assert_same_as_baseline(&run, &base);
    assert_eq!(run.requests("/pods?"), 3);
}

#[tokio::test]
async fn truncated_bodies_are_read_again() {
    let base = baseline().await;
    let run = read_through(
        vec![
            // Cut below HTTP (fewer bytes than Content-Length) and above it (broken JSON).
            Rule::new(Fault::Truncate).on("/pods?").times(1),
            Rule::new(Fault::CutJson)
                .on("/events?")
                .on_continue()
                .times(1),
            Rule::new(Fault::Truncate).on("/log?").times(1),
        ],
        TIMEOUT,
    )
    .await;
    assert_same_as_baseline(&run, &base);
    assert_eq!(run.requests("/pods?"), 2);
}

#[tokio::test]
async fn a_stalled_body_is_abandoned_and_read_again_within_the_deadline() {
    let base = baseline().await;
    let timeout = Duration::from_secs(8);
    let run = read_through(vec![Rule::new(Fault::Stall).on("/pods?").times(1)], timeout).await;
    assert_same_as_baseline(&run, &base);
    assert_eq!(run.requests("/pods?"), 2);
    assert!(run.elapsed < timeout, "{:?}", run.elapsed);
}

#[tokio::test]
async fn an_expired_continue_token_restarts_the_list_without_duplicates() {
    let base = baseline().await;
    let run = read_through(
        vec![Rule::new(Fault::Gone).on("/events?").on_continue().times(1)],
        TIMEOUT,
    )
    .await;
    assert_same_as_baseline(&run, &base);
    let firsts = run
        .seen
        .iter()
        .filter(|r| {
            // The node events' list: the scenario's own events fit in one page.
            r.path.starts_with("/api/v1/namespaces/default/events?")
                && !r.path.contains("continue=")
        })
        .count();
    assert_eq!(firsts, 2, "the events list did not start over");
}

#[tokio::test]
async fn a_slow_server_is_waited_for() {
    let base = baseline().await;
    let run = read_through(
        vec![Rule::new(Fault::Slow(Duration::from_millis(300)))],
        TIMEOUT,
    )
    .await;
    assert_same_as_baseline(&run, &base);
}

#[tokio::test]
async fn a_kind_that_keeps_failing_is_a_gap_and_the_rest_is_read() {
    let run = read_through(
        vec![
            Rule::new(Fault::Status(503)).on("/deployments?"),
            Rule::new(Fault::Status(403)).on("/secrets?"),
            Rule::new(Fault::Reset).on("/services?"),
        ],
        TIMEOUT,
    )
    .await;
    assert_eq!(run.cause(), "oom-limit-too-low");
    let gaps = run.gaps();
    let gap = |what: &str| {
        gaps.iter()
            .find(|g| g.starts_with(what))
            .unwrap_or_else(|| panic!("no gap for {what}: {gaps:#?}"))
            .clone()
    };
    let deployments = gap("deployments in namespace oom-limit");
    assert!(deployments.contains("(503)"), "{deployments}");
    assert!(gap("secrets in namespace oom-limit").contains("(403)"));
    gap("services in namespace oom-limit");
    assert_eq!(gaps.len(), 3, "{gaps:#?}");
    // Refusals are final: a 403 is asked once; a 503 is retried a bounded number of times.
    assert_eq!(run.requests("/secrets?"), 1);
    assert_eq!(run.requests("/deployments?"), 6, "{:#?}", run.seen);
    assert!(run.elapsed < TIMEOUT, "{:?}", run.elapsed);
}

#[tokio::test]
async fn logs_that_never_come_are_a_gap_within_the_deadline() {
    let timeout = Duration::from_secs(6);
    let run = read_through(vec![Rule::new(Fault::Stall).on("/log?")], timeout).await;
    assert_eq!(run.cause(), "oom-limit-too-low");
    let gaps = run.gaps();
    assert!(
        gaps.iter().any(|g| g.starts_with("logs of oom-limit/")
            && (g.contains("deadline") || g.contains("no complete answer"))),
        "{gaps:#?}"
    );
    assert!(
        run.elapsed < timeout + Duration::from_secs(1),
        "{:?}",
        run.elapsed
    );
}

#[tokio::test]
async fn when_nothing_answers_the_deadline_ends_the_read_with_one_error() {
    let timeout = Duration::from_secs(4);
    let run = read_through(vec![Rule::new(Fault::Stall)], timeout).await;
    match &run.state {
        Err(SourceError::TimedOut { doing, why }) => {
            assert_eq!(doing, "cannot list pods in namespace oom-limit");
            assert!(why.contains("--timeout"), "{why}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        run.elapsed < timeout + Duration::from_secs(1),
        "{:?}",
        run.elapsed
    );
}

/// The scenario's troubled pod copied onto `node` as `name` (a new uid).
fn pod_on(state: &ClusterState, name: &str, node: &str) -> k8s_openapi::api::core::v1::Pod {
    let mut p = state.pods[0].clone();
    p.metadata.name = Some(name.into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.spec.as_mut().expect("a spec").node_name = Some(node.into());
    p
}

/// The scenario's node copied as `name`; `kwok` marks it as kwok marks the nodes it simulates.
fn node_like(state: &ClusterState, name: &str, kwok: bool) -> k8s_openapi::api::core::v1::Node {
    let mut n = state.nodes[0].clone();
    n.metadata.name = Some(name.into());
    if kwok {
        n.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("kwok.x-k8s.io/node".into(), "fake".into());
    }
    n
}

/// Old behaviour: configz was asked of every group's first node, a kwok node included, and its
/// failure stood for every node of the group. Now simulated nodes are not asked, a failed member
/// makes the next one be tried (up to three), and every gap is one summary line.
#[tokio::test]
async fn configz_is_not_asked_of_simulated_nodes_and_one_failure_does_not_stand_for_a_group() {
    let mut state = captured(SCENARIO);
    let real = state.nodes[0].metadata.name.clone().expect("a node name");
    state
        .pods
        .retain(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&real));
    for i in 0..4 {
        let kwok = format!("kwok-{i}");
        state.nodes.push(node_like(&state, &kwok, true));
        state
            .pods
            .push(pod_on(&state, &format!("on-{kwok}"), &kwok));
    }
    for i in 0..4 {
        let alike = format!("alike-{i}");
        state.nodes.push(node_like(&state, &alike, false));
        state
            .pods
            .push(pod_on(&state, &format!("on-{alike}"), &alike));
    }
    let run = read_state(state, Vec::new(), TIMEOUT).await;
    let configz: Vec<&str> = run
        .seen
        .iter()
        .filter(|r| r.path.contains("/configz"))
        .map(|r| r.path.as_str())
        .collect();
    assert!(
        configz.iter().all(|p| !p.contains("/nodes/kwok-")),
        "{configz:#?}"
    );
    // The fake serves no configz (404): three members of the real group are tried, not one.
    assert_eq!(configz.len(), 3, "{configz:#?}");
    let reasons = |r: GapReason| {
        run.state()
            .gaps
            .iter()
            .filter(|g| matches!(g.about, GapAbout::KubeletConfig { .. }) && g.reason == r)
            .count()
    };
    assert_eq!(reasons(GapReason::NoKubelet), 4);
    assert_eq!(reasons(GapReason::NotFound), 3);
    assert_eq!(reasons(GapReason::NotTried), 2);
    let report = unloop_core::diagnose(
        run.state(),
        &unloop_core::diagnose::Query::default(),
        run.now,
    );
    let lines: Vec<&str> = report
        .gap_summary
        .iter()
        .map(|s| s.line.as_str())
        .filter(|l| l.starts_with("kubelet config"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("kubelet config of 9 nodes"),
        "{}",
        lines[0]
    );
}

/// Old behaviour: when the current instance's log was refused (400), the previous one was asked
/// for even of a container that never ran before, which can only give another 400.
#[tokio::test]
async fn no_previous_log_is_asked_of_a_container_that_never_ran_before() {
    let mut state = captured(SCENARIO);
    let node = state.nodes[0].metadata.name.clone().expect("a node name");
    let mut first = pod_on(&state, "first-run", &node);
    let cs = &mut first
        .status
        .as_mut()
        .expect("a status")
        .container_statuses
        .as_mut()
        .expect("statuses")[0];
    cs.restart_count = 0;
    cs.state = cs.last_state.take();
    state.pods.push(first);
    let run = read_state(
        state,
        vec![Rule::new(Fault::Status(400)).on("/pods/first-run/log")],
        TIMEOUT,
    )
    .await;
    let asked: Vec<&str> = run
        .seen
        .iter()
        .filter(|r| r.path.contains("/pods/first-run/log"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(!asked[0].contains("previous=true"), "{asked:#?}");
    assert!(
        run.state()
            .gaps
            .iter()
            .any(|g| g.reason == GapReason::Refused
                && matches!(&g.about, GapAbout::Log { pod, .. } if pod == "first-run")),
        "{:#?}",
        run.state().gaps
    );
}
