//! A short crash-loop backoff cap on the testbed's real kubelet (testbed/backoff-cap.sh): the
//! kubelet restarted with `crashLoopBackOff.maxContainerRestartPeriod: 4s` (KubeletCrashLoopBackOffMax,
//! on by default in 1.35) restarts a crash-looping container every 4 s, the first delay too (not
//! 10 s, 20 s, 40 s ...). `unloop diagnose` must read that cap from configz, draw the timeline with
//! it, and put the next restart where the kubelet then really does it. The kubelet's own
//! configuration is restored whatever happens (`Restore`), and the namespace deleted.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use support::{repo_root, unloop};

const NS: &str = "backoff-cap-e2e";
/// The cap the kubelet runs with during the test, in seconds (`maxContainerRestartPeriod`).
const CAP: i64 = 4;
/// How much later than its schedule the kubelet may really restart: the schedule's time is the
/// earliest. After a crash the kubelet's pod worker requeues the pod for the rest of the delay
/// with up to 50% jitter (pod_workers.go, `completeWork`), its sync loop picks work up once a
/// second, status times are whole seconds, and creating and starting the container takes a
/// second or two on a busy node. Seen on the testbed with a 4 s cap: 5 to 8 s between a crash
/// and the next start; the default schedule's would be 10, 20, 40 and 80 s.
const LATE: i64 = CAP / 2 + 4;
/// And how much earlier it may seem: whole-second status times.
const EARLY: i64 = 1;

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: backoff-cap-e2e
---
apiVersion: v1
kind: Pod
metadata:
  name: crasher
  namespace: backoff-cap-e2e
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: crasher
    image: unloop.test/app:1.0
    command: [sh, -c, 'echo "cannot start: no configuration"; exit 1']
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {memory: 32Mi}
"#;

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must point at the testbed (testbed/test-all.sh sets it)")
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("kubectl reads stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kubectl runs")
}

fn backoff_cap(args: &[&str]) -> Result<(), String> {
    let st = Command::new("bash")
        .arg(repo_root().join("testbed/backoff-cap.sh"))
        .args(args)
        .status()
        .map_err(|e| e.to_string())?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("testbed/backoff-cap.sh {} failed", args.join(" ")))
}

/// Restores the kubelet's own configuration and deletes the namespace when dropped, even when an
/// assertion failed.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        kubectl(
            &[
                "delete",
                "namespace",
                NS,
                "--ignore-not-found",
                "--wait=false",
            ],
            None,
        );
        support::restored(
            backoff_cap(&["off"]),
            "the kubelet may still run with the short backoff cap",
        );
    }
}

/// Each run of the container seen so far, by run number (1 is the first start): when it started
/// and when it ended, as the pod's status says.
#[derive(Debug, Default)]
struct Runs {
    runs: BTreeMap<i64, (Option<Timestamp>, Option<Timestamp>)>,
    /// The kubelet's waiting messages seen (`back-off 4s restarting failed container=...`).
    waiting: Vec<String>,
}

fn time(v: &serde_json::Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

impl Runs {
    /// Reads the pod once; returns its restart count.
    fn observe(&mut self) -> i64 {
        let out = kubectl(&["get", "pod", "-n", NS, "crasher", "-o", "json"], None);
        let Ok(pod) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return -1;
        };
        let cs = &pod["status"]["containerStatuses"][0];
        let Some(restarts) = cs["restartCount"].as_i64() else {
            return -1;
        };
        let mut record = |run: i64, st: &serde_json::Value| {
            let (started, finished) = if !st["running"].is_null() {
                (time(&st["running"]["startedAt"]), None)
            } else if !st["terminated"].is_null() {
                (
                    time(&st["terminated"]["startedAt"]),
                    time(&st["terminated"]["finishedAt"]),
                )
            } else {
                return;
            };
            let e = self.runs.entry(run).or_default();
            e.0 = e.0.or(started);
            e.1 = e.1.or(finished);
        };
        // lastState is the run before the current one.
        record(restarts, &cs["lastState"]);
        record(restarts + 1, &cs["state"]);
        if let Some(m) = cs["state"]["waiting"]["message"].as_str()
            && !self.waiting.iter().any(|w| w == m)
        {
            self.waiting.push(m.to_string());
        }
        restarts
    }

    /// The seconds between the end of run `k - 1` and the start of run `k`: the delay the kubelet
    /// really held restart `k - 1` back.
    fn gap_before(&self, k: i64) -> Option<i64> {
        let finished = self.runs.get(&(k - 1))?.1?;
        let started = self.runs.get(&k)?.0?;
        Some(started.duration_since(finished).as_secs())
    }

    /// Polls until run `k` has started, or the deadline.
    fn until_started(&mut self, k: i64, deadline: Instant) {
        while self.runs.get(&k).and_then(|r| r.0).is_none() {
            assert!(
                Instant::now() < deadline,
                "run {k} never started within the time allowed: {self:?}"
            );
            self.observe();
            std::thread::sleep(Duration::from_millis(400));
        }
    }
}

/// Runs `unloop diagnose -n NS` with `extra` until its report shows the container in backoff (it
/// may be caught running between crashes); returns the output.
fn diagnose_in_backoff(extra: &[&str], shows_backoff: impl Fn(&str) -> bool) -> String {
    let kc = kubeconfig();
    let mut args = vec!["diagnose", "--kubeconfig", &kc, "-n", NS, "pod/crasher"];
    args.extend_from_slice(extra);
    let mut last = String::new();
    for _ in 0..20 {
        let out = unloop(&args);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if shows_backoff(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    panic!("diagnose never showed the container in backoff: {last}");
}

#[test]
fn a_short_backoff_cap_is_what_the_kubelet_does_and_what_diagnose_says() {
    let started = Instant::now();
    kubectl(
        &[
            "delete",
            "namespace",
            NS,
            "--ignore-not-found",
            "--wait=true",
        ],
        None,
    );
    let _restore = Restore;
    backoff_cap(&["on", &format!("{CAP}s")]).expect("the kubelet restarted with a 4s cap");
    let applied = kubectl(&["apply", "-f", "-"], Some(MANIFEST));
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // Six runs: restarts 2 to 5 are each held back by the cap (and at most the kubelet's
    // lateness, LATE, under the 10 s of the default first delay). Under the default schedule they
    // would wait 10 s, 20 s, 40 s and 80 s; here they come within about 30 s.
    let mut runs = Runs::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    runs.until_started(6, deadline);
    let gaps: Vec<i64> = (3..=6).filter_map(|k| runs.gap_before(k)).collect();
    assert!(gaps.len() >= 3, "too few runs seen whole: {runs:?}");
    for g in &gaps {
        assert!(
            (CAP - EARLY..=CAP + LATE).contains(g),
            "a restart held back {g}s, not the {CAP}s cap: gaps {gaps:?}, {runs:?}"
        );
    }

    // What diagnose says, in JSON: the cap from configz, the first delay the cap too.
    let json = diagnose_in_backoff(&["-o", "json"], |out| {
        serde_json::from_str::<serde_json::Value>(out)
            .is_ok_and(|r| !r["diagnoses"][0]["backoff"].is_null())
    });
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let b = &report["diagnoses"][0]["backoff"];
    assert_eq!(b["capSecs"], CAP, "{b:#}");
    assert_eq!(b["initialSecs"], CAP, "{b:#}");
    assert_eq!(b["delaySecs"], CAP, "{b:#}");
    assert!(
        b["settingsFrom"]
            .as_str()
            .is_some_and(|s| s.contains("kubelet config")),
        "{b:#}"
    );
    // The next restart it announced, against the one the kubelet then made.
    let restarts = b["restartCount"].as_i64().expect("restartCount");
    let announced: Timestamp = b["nextRetryAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no nextRetryAt: {b:#}"));
    // Run `restarts + 1` crashed; the kubelet's next restart starts run `restarts + 2`.
    runs.until_started(restarts + 2, Instant::now() + Duration::from_secs(30));
    let actual = runs.runs[&(restarts + 2)].0.unwrap();
    let off = actual.duration_since(announced).as_secs();
    assert!(
        (-EARLY..=LATE).contains(&off),
        "diagnose announced the next restart at {announced}, the kubelet made it at {actual} ({off}s later)"
    );

    // And as a person reads it.
    let human = diagnose_in_backoff(&["--color", "never"], |out| out.contains("timeline"));
    assert!(
        human.contains(&format!(
            "every delay is {CAP}s, the first one too (the cap is below the kubelet's usual first delay) (node unloop-node's kubelet config)"
        )),
        "{human}"
    );
    assert!(human.contains(&format!(" 0s ▮ [{CAP}s ▮]×")), "{human}");
    assert!(
        human.contains(&format!("waits {CAP}s (the cap)")),
        "{human}"
    );

    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "backoff cap {CAP}s: restarts held back {gaps:?} s; diagnose's next restart {off}s from the kubelet's; waiting messages {:?}; {:.0}s so far",
            runs.waiting,
            started.elapsed().as_secs_f64()
        );
    }
}
