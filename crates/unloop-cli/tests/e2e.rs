//! End to end against the live testbed cluster: every scenario diagnosed live, then captured
//! with `unloop snapshot` and diagnosed again from that fresh bundle. Built only with
//! `--features e2e`; `testbed/test-all.sh` starts the cluster, applies the scenarios and runs it.

mod support;

use std::process::Command;

use support::{Scenario, check, check_all, diagnose_json, repo_root, scenarios, unloop};

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must point at the testbed (testbed/test-all.sh sets it)")
}

/// Re-arms a transient scenario (its state decays: a fixed cause stops crashing once the backoff
/// ends) and waits for it, so it is diagnosed inside its window.
fn rearm(s: &Scenario) -> Result<(), String> {
    let script = repo_root().join("testbed/scenarios.sh");
    for verb in ["apply", "wait"] {
        let st = Command::new("bash")
            .arg(&script)
            .arg(verb)
            .arg(&s.name)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("{}: scenarios.sh {verb} failed", s.name));
        }
    }
    Ok(())
}

fn diagnose_live(s: &Scenario) -> Result<(), String> {
    let kc = kubeconfig();
    let out = diagnose_json(s, &["--kubeconfig", &kc]);
    check(s, &out).map_err(|e| format!("live: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bundle = dir.path().join("b.json.gz");
    let snap = unloop(&[
        "snapshot",
        "--kubeconfig",
        &kc,
        "-n",
        &s.name,
        bundle.to_str().unwrap(),
    ]);
    if !snap.status.success() {
        return Err(format!(
            "{}: snapshot failed: {}",
            s.name,
            String::from_utf8_lossy(&snap.stderr)
        ));
    }
    let out = diagnose_json(s, &["--from", bundle.to_str().unwrap()]);
    check(s, &out).map_err(|e| format!("re-captured: {e}"))
}

#[test]
fn every_scenario_live_and_recaptured() {
    let all = scenarios();
    let (transient, steady): (Vec<&Scenario>, Vec<&Scenario>) =
        all.iter().partition(|s| s.expect.fixed);
    let mut results: Vec<Result<(), String>> = steady.iter().map(|s| diagnose_live(s)).collect();
    for s in transient {
        results.push(rearm(s).and_then(|()| diagnose_live(s)));
    }
    check_all(results);
}

#[test]
fn all_namespaces_finds_every_troubled_scenario_and_not_the_healthy_one() {
    let kc = kubeconfig();
    // The shortest settle period a scenario asks for: a recovered container is not trouble.
    let settle = scenarios()
        .iter()
        .filter_map(|s| s.expect.settle)
        .min()
        .map_or_else(|| "10m".to_string(), |n| format!("{n}s"));
    let out = unloop(&[
        "diagnose",
        "--kubeconfig",
        &kc,
        "-A",
        "--settle",
        &settle,
        "-o",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let namespaces: Vec<&str> = report["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["namespace"].as_str())
        .collect();
    for s in scenarios() {
        let found = namespaces.contains(&s.name.as_str());
        if s.expect.cause == "none" {
            assert!(!found, "{} is healthy but was diagnosed", s.name);
        } else if !s.expect.fixed {
            assert!(found, "{} was not found by -A", s.name);
        }
    }
}

#[test]
fn an_unreachable_cluster_is_one_clear_error_with_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    // A port on this machine where nothing listens: refused at once, no packet leaves the host.
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let out = unloop(&["diagnose", "--kubeconfig", kc.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with("error: cannot reach the Kubernetes API server at https://127.0.0.1:1/"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("kubectl runs")
}

/// A namespace of one test's own on the testbed. Made fresh (what an earlier run left is deleted
/// first); manifests are written to a directory of its own and applied; when the test ends,
/// passed or failed, the namespace is deleted and the test's time is printed.
struct Sandbox {
    ns: &'static str,
    what: &'static str,
    dir: tempfile::TempDir,
    began: std::time::Instant,
}

impl Sandbox {
    fn new(ns: &'static str, what: &'static str) -> Sandbox {
        let began = std::time::Instant::now();
        kubectl(&[
            "delete",
            "namespace",
            ns,
            "--ignore-not-found",
            "--wait=true",
        ]);
        Sandbox {
            ns,
            what,
            dir: tempfile::tempdir().unwrap(),
            began,
        }
    }

    /// Writes `text` to the file `name` in the sandbox's directory; its path.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    /// Applies `text` (written to `name` first); the test fails if kubectl does.
    fn apply(&self, name: &str, text: &str) {
        ok(kubectl(&["apply", "-f", &self.file(name, text)]));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "{}: {:.1}s in all",
                self.what,
                self.began.elapsed().as_secs_f64()
            );
        }
        kubectl(&["delete", "namespace", self.ns, "--wait=false"]);
    }
}

/// The output of a command that must succeed, else the test fails with its stderr.
fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Statuses where the container never starts: a copy cannot start either, and unloop must roll it
/// back and say why.
const CANNOT_START: [&str; 8] = [
    "CreateContainerConfigError",
    "ErrImageNeverPull",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    // Stuck before any start: the copy is stuck the same way.
    "ContainerCreating",
    "Pending",
    "Unschedulable",
];

/// Causes where the container runs until the kubelet kills it: by hand, with nothing to kill
/// it, it keeps running.
const KILLED_BY_PROBE: [&str; 2] = ["liveness-probe-kill", "probe-wrong-port"];

/// The guide's step 4 for every crash scenario: a running copy, exec into it, run the original
/// command by hand, see the crash again; then --cleanup leaves nothing behind.
#[test]
fn debug_copies_reproduce_each_crash_by_hand() {
    let kc = kubeconfig();
    let mut failures = Vec::new();
    for s in scenarios()
        .iter()
        .filter(|s| s.expect.cause != "none" && !s.expect.fixed)
    {
        let diag = diagnose_json(s, &["--kubeconfig", &kc]);
        let report: serde_json::Value = serde_json::from_slice(&diag.stdout).expect("json");
        let d = &report["diagnoses"][0];
        // A failed Job whose pods are gone has no pod to copy.
        let Some(pod) = d["pod"].as_str().filter(|p| !p.is_empty()) else {
            continue;
        };
        let (pod, container, status) = (
            pod,
            d["container"].as_str().unwrap(),
            d["status"].as_str().unwrap_or_default(),
        );
        let out = unloop(&[
            "debug",
            "--kubeconfig",
            &kc,
            "-n",
            &s.name,
            pod,
            "-c",
            container,
            "--helper-image",
            "unloop.test/app:1.0",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let copy = unloop_core_copy_name(pod);
        let left = kubectl(&[
            "get",
            "pod",
            &copy,
            "-n",
            &s.name,
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        if CANNOT_START.iter().any(|r| status.contains(r)) {
            if out.status.code() != Some(4)
                || !stderr.contains("did not start")
                || !left.stdout.is_empty()
            {
                failures.push(format!("{}: a copy that cannot start must be rolled back with exit 4; got {:?}\n{stderr}", s.name, out.status.code()));
            }
            continue;
        }
        if !out.status.success() {
            failures.push(format!("{}: unloop debug failed: {stderr}", s.name));
            continue;
        }
        let lines: Vec<&str> = stdout.lines().collect();
        let exec = lines
            .iter()
            .position(|l| l.starts_with("open a shell"))
            .map(|i| lines[i + 1].trim())
            .unwrap_or_default();
        let shell: Vec<&str> = exec
            .split(" -- ")
            .nth(1)
            .unwrap_or("sh")
            .split_whitespace()
            .collect();
        let original = lines
            .iter()
            .position(|l| l.starts_with("then run the original"))
            .map(|i| lines[i + 1].trim())
            .unwrap_or_default();
        // The testbed's images all start /app/testapp.
        let original = original.replace("'<image entrypoint>'", "/app/testapp");
        let script = if KILLED_BY_PROBE.contains(&s.expect.cause.as_str()) {
            // Without the probe nothing kills it: still running after 5 s is the reproduction.
            format!("timeout 5 {original}; echo unloop-exit=$?")
        } else {
            // Run by the shell itself: `timeout` would exec it directly and turn an exec format
            // error (the shell's "syntax error") into "can't execute".
            format!("{original}; echo unloop-exit=$?")
        };
        let mut args = vec!["exec", &copy, "-n", &s.name, "-c", container, "--"];
        args.extend(shell.iter());
        args.extend(["-c", script.as_str()]);
        let ran = kubectl(&args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        );
        let code: Option<i64> = said
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("unloop-exit="))
            .and_then(|c| c.trim().parse().ok());
        let want = d["exit"]["code"].as_i64();
        let highlight_seen = d["logs"]["highlights"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["text"].as_str())
            .any(|t| {
                // Compare the message, not the timestamp in front of it.
                let msg = t.split_once(": ").map(|(_, m)| m).unwrap_or(t);
                said.contains(msg)
            });
        let reproduced = match s.expect.cause.as_str() {
            "liveness-probe-kill" | "probe-wrong-port" => matches!(code, Some(143) | Some(124)),
            "command-not-found" | "not-executable" => {
                matches!(code, Some(126) | Some(127)) || highlight_seen
            }
            // A shell handed a binary for another architecture tries to read it as a script.
            "exec-format" => {
                code.is_some_and(|c| c != 0)
                    && (said.contains("exec format error") || said.contains("syntax error"))
            }
            _ => code == want || (code.is_some_and(|c| c != 0) && highlight_seen),
        };
        if !reproduced {
            failures.push(format!("{}: running `{original}` in the copy gave exit {code:?} (diagnosed {want:?}):\n{said}", s.name));
        }
    }
    let clean = unloop(&["debug", "--kubeconfig", &kc, "--cleanup", "-A"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let left = kubectl(&[
        "get",
        "pods",
        "-A",
        "-l",
        "unloop.dev/debug-copy=true",
        "-o",
        "name",
    ]);
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "copies left after --cleanup: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert!(
        failures.is_empty(),
        "{} scenario(s) not reproduced:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn unloop_core_copy_name(pod: &str) -> String {
    let base: String = pod.chars().take(57).collect();
    format!("{}-debug", base.trim_end_matches('-'))
}

/// `--in-place` then `--restore` leaves the Deployment's pod template exactly as it was.
#[test]
fn in_place_override_and_restore_round_trip_exactly() {
    let kc = kubeconfig();
    let ns = "missing-env-var";
    let template = || {
        let out = kubectl(&["get", "deploy/api", "-n", ns, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("deployment json");
        v["spec"]["template"].clone()
    };
    let before = template();
    let out = unloop(&[
        "debug",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "deploy/api",
        "--in-place",
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = template();
    assert_ne!(before, during);
    assert!(during["spec"]["containers"][0]["livenessProbe"].is_null());
    // A second override is refused rather than losing the saved original.
    let again = unloop(&[
        "debug",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "deploy/api",
        "--in-place",
        "--yes",
    ]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let listed = String::from_utf8_lossy(
        &unloop(&["debug", "--kubeconfig", &kc, "--list", "-n", ns]).stdout,
    )
    .into_owned();
    assert!(
        listed.contains("in-place  missing-env-var/deploy/api"),
        "{listed}"
    );
    let out = unloop(&[
        "debug",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "--restore",
        "deploy/api",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        before,
        template(),
        "the pod template differs after --restore"
    );
    let annotations = kubectl(&[
        "get",
        "deploy/api",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        !String::from_utf8_lossy(&annotations.stdout).contains("unloop.dev"),
        "annotations left behind"
    );
}

/// With only get/list on pods and events, unloop still names the cause from the kubelet's own
/// message and says which evidence it could not read, and why.
#[test]
fn partial_rbac_degrades_gracefully() {
    let ns = "missing-configmap";
    let rbac = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: unloop-limited, namespace: {ns}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: unloop-limited, namespace: {ns}}}\nrules:\n- {{apiGroups: [\"\"], resources: [pods, events], verbs: [get, list]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: unloop-limited, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: unloop-limited}}\nsubjects: [{{kind: ServiceAccount, name: unloop-limited, namespace: {ns}}}]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("rbac.yaml");
    std::fs::write(&manifest, rbac).unwrap();
    let applied = kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let token = String::from_utf8(kubectl(&["create", "token", "unloop-limited", "-n", ns]).stdout)
        .unwrap();
    let server = String::from_utf8(
        kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .stdout,
    )
    .unwrap();
    let ca = String::from_utf8(
        kubectl(&[
            "config",
            "view",
            "--minify",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ])
        .stdout,
    )
    .unwrap();
    let kc = dir.path().join("limited.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: '{server}', certificate-authority-data: '{ca}'}}}}]\nusers: [{{name: u, user: {{token: '{}'}}}}]\ncontexts: [{{name: limited, context: {{cluster: t, user: u, namespace: {ns}}}}}]\ncurrent-context: limited\n",
            token.trim()
        ),
    )
    .unwrap();
    let out = unloop(&[
        "diagnose",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        report["diagnoses"][0]["causes"][0]["id"],
        "missing-configmap"
    );
    let gaps: Vec<String> = report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| format!("{}: {}", g["what"], g["why"]))
        .collect();
    for what in [
        "configmaps in namespace missing-configmap",
        "secrets in namespace missing-configmap",
        "nodes",
    ] {
        assert!(
            gaps.iter()
                .any(|g| g.contains(what) && g.contains("forbidden")),
            "no forbidden gap for {what}: {gaps:#?}"
        );
    }
    let human = unloop(&["diagnose", "--kubeconfig", kc.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("Not readable, so not used as evidence:")
    );
    kubectl(&["delete", "-f", manifest.to_str().unwrap()]);
}

/// `unloop audit --live --rightsize` against the testbed's real metrics-server: the healthy web
/// Deployment gets a memory figure from its measured working set, and the OOM-killed worker gets at
/// least twice the limit it died at.
#[test]
fn rightsize_from_the_live_metrics_api() {
    let kc = kubeconfig();
    let rightsize = |ns: &str| -> serde_json::Value {
        let out = unloop(&[
            "audit",
            "--live",
            "--kubeconfig",
            &kc,
            "-n",
            ns,
            "--rightsize",
            "--samples",
            "2",
            "--interval",
            "10s",
            "-o",
            "json",
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{ns}: audit output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        report["rightsize"].clone()
    };
    let mib = |q: &serde_json::Value| -> u64 {
        let q = q
            .as_str()
            .unwrap_or_else(|| panic!("no memory figure: {q}"));
        match q.strip_suffix("Gi") {
            Some(g) => g.parse::<u64>().unwrap() * 1024,
            None => q.strip_suffix("Mi").unwrap().parse().unwrap(),
        }
    };
    let find = |r: &serde_json::Value, container: &str| -> serde_json::Value {
        r["recommendations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["container"] == container)
            .cloned()
            .unwrap_or_else(|| panic!("no recommendation for {container}: {r:#}"))
    };

    let healthy = rightsize("healthy");
    assert!(
        healthy["source"]
            .as_str()
            .is_some_and(|s| s.contains("metrics API")),
        "{healthy:#}"
    );
    let web = find(&healthy, "web");
    let seen = web["memoryMaxSeen"]
        .as_u64()
        .expect("a measured working set");
    assert!(seen > 0, "{web:#}");
    // At least the maximum seen plus 15 %.
    assert!(
        mib(&web["memory"]) * 1024 * 1024 >= seen * 115 / 100,
        "{web:#}"
    );
    assert!(web["samples"].as_u64().unwrap() >= 1, "{web:#}");

    let oom = rightsize("oom-limit");
    let worker = find(&oom, "worker");
    assert_eq!(worker["oomKilledAtLimit"], "128Mi", "{worker:#}");
    assert!(mib(&worker["memory"]) >= 256, "{worker:#}");
}

/// The fault proxy (`unloop-faults`) between unloop and the testbed's apiserver, reached with the
/// testbed's admin credentials. For each kind of fault, `diagnose` still names the scenario's
/// cause (or reports a gap for what it could not read) within the deadline, with the documented
/// exit code; when nothing answers, it ends at the deadline with exit 4.
#[test]
fn a_misbehaving_api_server_still_gets_a_diagnosis_within_the_deadline() {
    use std::time::{Duration, Instant};
    use unloop_faults::{Fault, Proxy, Rule, Upstream};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig()).expect("testbed kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("client")
    });
    let scenario = scenarios()
        .into_iter()
        .find(|s| s.name == "oom-limit")
        .expect("the oom-limit scenario");
    let timeout = Duration::from_secs(20);
    let timeout_flag = format!("{}s", timeout.as_secs());
    let dir = tempfile::tempdir().unwrap();
    let run = |rules: Vec<Rule>| -> (std::process::Output, Duration) {
        let proxy = runtime
            .block_on(Proxy::start(Upstream::Kube(client.clone()), rules))
            .expect("proxy");
        let kc = dir.path().join("proxy.kubeconfig");
        std::fs::write(&kc, proxy.kubeconfig(&scenario.name)).unwrap();
        let start = Instant::now();
        let out = diagnose_json(
            &scenario,
            &[
                "--kubeconfig",
                kc.to_str().unwrap(),
                "--timeout",
                &timeout_flag,
            ],
        );
        (out, start.elapsed())
    };
    let cases: Vec<(&str, Vec<Rule>)> = vec![
        ("none", vec![]),
        (
            "429 with Retry-After",
            vec![
                Rule::new(Fault::Throttle {
                    retry_after_secs: 1,
                })
                .on("/pods?")
                .times(2),
            ],
        ),
        (
            "500 and 503",
            vec![
                Rule::new(Fault::Status(500)).on("/pods?").times(2),
                Rule::new(Fault::Status(503)).on("/events?").times(2),
                Rule::new(Fault::Status(503)).on("/log?").times(1),
            ],
        ),
        (
            "connection reset",
            vec![
                Rule::new(Fault::Reset).on("/pods?").times(2),
                Rule::new(Fault::Reset).on("/log?").times(1),
            ],
        ),
        (
            "truncated body",
            vec![
                Rule::new(Fault::Truncate).on("/pods?").times(1),
                Rule::new(Fault::CutJson).on("/events?").times(1),
            ],
        ),
        (
            "stalled body",
            vec![Rule::new(Fault::Stall).on("/pods?").times(1)],
        ),
        (
            "410 Gone on a continue token",
            vec![Rule::new(Fault::Gone).on_continue().times(1)],
        ),
        (
            "slow server",
            vec![Rule::new(Fault::Slow(Duration::from_millis(300)))],
        ),
    ];
    let mut results = Vec::new();
    for (name, rules) in cases {
        let (out, took) = run(rules);
        results.push(
            check(&scenario, &out)
                .and_then(|()| {
                    (took < timeout + Duration::from_secs(5))
                        .then_some(())
                        .ok_or(format!("took {took:?}"))
                })
                .map_err(|e| format!("fault {name}: {e}")),
        );
    }
    check_all(results);

    // A kind that keeps failing: a gap, and the cause is still named.
    let (out, took) = run(vec![Rule::new(Fault::Status(503)).on("/deployments?")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        report["diagnoses"][0]["causes"][0]["id"],
        scenario.expect.cause
    );
    assert!(
        report["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["what"].as_str().unwrap_or("").starts_with("deployments")),
        "{report:#}"
    );
    assert!(took < timeout + Duration::from_secs(5), "{took:?}");

    // Nothing answers: one error at the deadline, exit 4, no panic.
    let (out, took) = run(vec![Rule::new(Fault::Stall)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("--timeout") && !err.contains("panicked"),
        "{err}"
    );
    assert!(took < timeout + Duration::from_secs(5), "{took:?}");
}

/// A delete of a debug copy names the copy by uid: once another pod has taken the copy's name,
/// deleting the copy unloop inspected leaves the newcomer alone.
#[test]
fn deleting_a_copy_never_deletes_a_pod_that_took_its_name() {
    let kc = kubeconfig();
    let ns = "missing-env-var";
    let pods = kubectl(&["get", "pods", "-n", ns, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&pods.stdout).expect("pod list");
    let original: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(list["items"][0].clone()).expect("a pod of the scenario");
    let container = original.spec.as_ref().unwrap().containers[0].name.clone();
    let copy = unloop_core::debug::debug_copy(
        &original,
        &container,
        &unloop_core::debug::KeepAlive::Shell,
        false,
        jiff::Timestamp::now(),
    );
    let name = copy.metadata.name.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("copy.json");
    std::fs::write(&manifest, serde_json::to_vec(&copy).unwrap()).unwrap();
    let create = || {
        let made = kubectl(&["create", "-f", manifest.to_str().unwrap(), "-o", "json"]);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        serde_json::from_slice::<k8s_openapi::api::core::v1::Pod>(&made.stdout).unwrap()
    };
    let inspected = create();
    let gone = kubectl(&["delete", "pod", &name, "-n", ns, "--wait=true"]);
    assert!(gone.status.success());
    let newcomer = create();
    assert_ne!(inspected.metadata.uid, newcomer.metadata.uid);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = unloop_source::live::LiveOptions {
        kubeconfig: Some(kc.clone().into()),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    let refused = rt.block_on(async {
        let live = unloop_source::live::connect(&opts).await.unwrap();
        unloop_source::debug::delete_copy(&live, &inspected).await
    });
    assert!(
        matches!(
            refused,
            Err(unloop_source::debug::DebugOpError::Conflict(_))
        ),
        "{refused:?}"
    );
    let still = kubectl(&[
        "get",
        "pod",
        &name,
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&still.stdout),
        newcomer.metadata.uid.clone().unwrap(),
        "the newcomer was deleted"
    );
    // The copy it is, by its own uid, goes.
    rt.block_on(async {
        let live = unloop_source::live::connect(&opts).await.unwrap();
        unloop_source::debug::delete_copy(&live, &newcomer).await
    })
    .unwrap();
}

/// The restart count of the first pod of deployment `app` in `ns`, and when its container started
/// running (empty when it is not running: dead, backing off).
/// `app`'s first container: restart count, and whether it runs.
fn first_container(ns: &str, app: &str) -> (i64, bool) {
    first_containers(ns)
        .get(app)
        .map_or((0, false), |(r, running, _)| (*r, *running))
}

/// Per app label of the namespace's pods: the first container's restart count, whether it runs,
/// and how many seconds ago its latest run ended (None before the first crash). One request.
fn first_containers(ns: &str) -> std::collections::BTreeMap<String, (i64, bool, Option<i64>)> {
    let out = kubectl(&["-n", ns, "get", "pods", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let now = jiff::Timestamp::now();
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| {
            let app = p["metadata"]["labels"]["app"].as_str()?.to_string();
            let c = &p["status"]["containerStatuses"][0];
            // Just after a crash the run is in state.terminated (kubectl's Error), later in
            // lastState.terminated behind a waiting CrashLoopBackOff.
            let ago = ["state", "lastState"]
                .iter()
                .filter_map(|k| c[k]["terminated"]["finishedAt"].as_str())
                .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
                .max()
                .map(|t| now.duration_since(t).as_secs());
            Some((
                app,
                (
                    c["restartCount"].as_i64().unwrap_or(0),
                    !c["state"]["running"].is_null(),
                    ago,
                ),
            ))
        })
        .collect()
}

/// The FAQ ("why does my pod stay in CrashLoopBackOff after I fixed the config?"), live:
/// three copies of the fixed-but-backing-off scenario in a namespace of their own. Once two of
/// them have their ConfigMap, `retry` restarts one at once ("fixed", exit 0) while
/// `diagnose --watch` follows the other through its backoff (the baseline, measured in the same
/// run); `retry` of the third, still broken, exits 1 with its diagnosis.
#[test]
fn retry_skips_the_backoff_and_watch_follows_it() {
    let ns = "retry-e2e";
    let kc = kubeconfig();
    let scenario = repo_root().join("testbed/scenarios/fixed-but-backing-off");
    let manifest = std::fs::read_to_string(scenario.join("manifest.yaml")).unwrap();
    let configmap = std::fs::read_to_string(scenario.join("configmap.yaml")).unwrap();
    let copy = |text: &str, app: &str| {
        text.replace("fixed-but-backing-off", ns)
            .replace("payments", app)
    };
    let sandbox = Sandbox::new(ns, "retry of a Deployment");
    for app in ["retried", "waiting", "broken"] {
        sandbox.apply(&format!("{app}.yaml"), &copy(&manifest, app));
    }
    // No --yes and no terminal to ask on: refused in one line and a hint, nothing deleted.
    let refused = unloop(&["retry", "--kubeconfig", &kc, "-n", ns, "deploy/retried"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: refusing to restart pods without confirmation"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");

    // Into the backoff: each has restarted twice at least (the kubelet restarts at once, then
    // after 10 s, 20 s, 40 s), and the one that waits it out crashed after its third restart or
    // later, at most 10 s ago: at least 30 s of the kubelet's delay are ahead of it, so the
    // baseline does not hang on when this loop happened to look.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let states = first_containers(ns);
        let fresh = states
            .get("waiting")
            .is_some_and(|(r, _, ago)| *r >= 3 && ago.is_some_and(|a| a <= 10));
        if fresh
            && ["retried", "waiting", "broken"].iter().all(|a| {
                states
                    .get(*a)
                    .is_some_and(|(r, running, _)| *r >= 2 && !running)
            })
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fresh crash after 2 restarts within 240 s: {states:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // The fix, for two of them.
    for app in ["retried", "waiting"] {
        sandbox.apply(&format!("{app}-cm.yaml"), &copy(&configmap, app));
    }
    let fixed_at = std::time::Instant::now();
    let watch = Command::new(env!("CARGO_BIN_EXE_unloop"))
        .args([
            "diagnose",
            "--kubeconfig",
            &kc,
            "-n",
            ns,
            "deploy/waiting",
            "--watch",
        ])
        .args(["--settle", "5s", "--timeout", "170s"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unloop runs");
    let retried = unloop(&[
        "retry",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "deploy/retried",
        "--yes",
        "--settle",
        "5s",
        "--timeout",
        "120s",
    ]);
    let retry_secs = fixed_at.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&retried.stdout);
    let err = String::from_utf8_lossy(&retried.stderr);
    assert_eq!(retried.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.starts_with("fixed: every pod of deploy/retried"),
        "{out}"
    );
    assert!(
        err.contains("kubectl delete pod retried-"),
        "the plan names the pod: {err}"
    );

    let broken = unloop(&[
        "retry",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "deploy/broken",
        "--yes",
        "--settle",
        "5s",
        "--timeout",
        "120s",
    ]);
    let out = String::from_utf8_lossy(&broken.stdout);
    let err = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("failed again"), "{err}");
    assert!(
        out.contains("broken-config"),
        "the new diagnosis names the ConfigMap: {out}"
    );

    let watched = watch.wait_with_output().unwrap();
    let watch_secs = fixed_at.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&watched.stdout);
    let err = String::from_utf8_lossy(&watched.stderr);
    assert_eq!(watched.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.starts_with("fixed: every pod of deploy/waiting"),
        "{out}"
    );
    // Plain lines (stderr is no terminal), one per change: the dead container, then the run.
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("waiting-")).collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(!lines[0].contains("Running"), "{err}");
    assert!(lines.last().unwrap().contains("Running"), "{err}");
    // The figure the report quotes: time to fixed with retry against waiting out the backoff.
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "retry: fixed {retry_secs:.1}s after the fix; waiting out the backoff: {watch_secs:.1}s (ratio {:.2})",
            retry_secs / watch_secs
        );
    }
    assert!(
        retry_secs < watch_secs,
        "retry took {retry_secs:.1}s, waiting out the backoff {watch_secs:.1}s"
    );
}

/// A failed Job retried, live: two copies of job-fails (backoffLimit 0) whose DATABASE_URL comes
/// from the optional ConfigMap key that fixed-but-backing-off's Deployment reads, absent: each
/// Job fails at once. One gets its ConfigMap; `retry job/NAME --yes` deletes it (its failed pod
/// with it) and creates it again from its spec, and the new pod completes ("fixed", exit 0). The
/// other, still broken, fails again (exit 1) with the new diagnosis naming its ConfigMap. The
/// remedy's pipeline (`kubectl get job | jq | kubectl replace`) builds the same Job as `retry`.
#[test]
fn retry_re_creates_a_failed_job() {
    let ns = "retry-job-e2e";
    let kc = kubeconfig();
    let read = |path: &str| std::fs::read_to_string(repo_root().join(path)).unwrap();
    let job_fails = read("testbed/scenarios/job-fails/manifest.yaml");
    let deploy = read("testbed/scenarios/fixed-but-backing-off/manifest.yaml");
    let configmap = read("testbed/scenarios/fixed-but-backing-off/configmap.yaml");
    // The Deployment's env entry that reads the optional ConfigMap key.
    let start = deploy.find("        - name: DATABASE_URL").unwrap();
    let end = start + deploy[start..].find("optional: true}").unwrap() + "optional: true}".len();
    let from_configmap = &deploy[start..end];
    let copy = |text: &str, app: &str| {
        text.replace("fixed-but-backing-off", ns)
            .replace("job-fails", ns)
            .replace("payments", app)
            .replace("report", app)
    };
    let job = |app: &str| {
        let text = job_fails
            .replace(
                "        - {name: DATABASE_URL, value: \"postgres://report@warehouse:5432/sales\"}",
                from_configmap,
            )
            // Once it has its DATABASE_URL, the Job's work is done.
            .replace(
                "args: [connect]",
                "command: [sh, -c, '[ -n \"$DATABASE_URL\" ] || exec /app/testapp serve; exec /app/testapp exit 0']",
            )
            .replace("backoffLimit: 1", "backoffLimit: 0");
        assert!(
            text.contains("configMapKeyRef")
                && text.contains("testapp exit 0")
                && text.contains("backoffLimit: 0"),
            "the job-fails manifest changed: {text}"
        );
        copy(&text, app)
    };
    let sandbox = Sandbox::new(ns, "retry of a Job");
    for app in ["nightly", "broken"] {
        sandbox.apply(&format!("{app}.yaml"), &job(app));
    }
    ok(kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Failed",
        "job/nightly",
        "job/broken",
        "--timeout=90s",
    ]));

    // What the user would paste builds the same Job as retry.
    let read_job = |name: &str| -> k8s_openapi::api::batch::v1::Job {
        serde_json::from_str(&ok(kubectl(&["get", "job", name, "-n", ns, "-o", "json"]))).unwrap()
    };
    let old = read_job("nightly");
    let mut jq = Command::new("jq")
        .arg(unloop_core::jobs::rerun_filter())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("jq runs (testbed/build.sh installs it)");
    {
        use std::io::Write;
        let body = serde_json::to_vec(&old).unwrap();
        jq.stdin.take().unwrap().write_all(&body).unwrap();
    }
    let by_hand: k8s_openapi::api::batch::v1::Job =
        serde_json::from_slice(&jq.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(by_hand, unloop_core::jobs::rerun(&old));

    // The fix, for one of them.
    sandbox.apply("nightly-cm.yaml", &copy(&configmap, "nightly"));
    let retried = unloop(&[
        "retry",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "job/nightly",
        "--yes",
        "--timeout",
        "60s",
    ]);
    let out = String::from_utf8_lossy(&retried.stdout);
    let err = String::from_utf8_lossy(&retried.stderr);
    assert_eq!(retried.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.starts_with("fixed: a new pod of job/nightly in namespace retry-job-e2e completed"),
        "{out}"
    );
    assert!(
        err.starts_with("job/nightly in namespace retry-job-e2e: re-created from its spec now"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "kubectl get job nightly -n {ns} -o json | jq 'del(.status,"
        )),
        "the plan shows the same by hand: {err}"
    );
    // A new Job (another uid), what the user wrote kept, complete; the old pod went with the
    // old Job (Background propagation), none left orphaned.
    let new = read_job("nightly");
    assert_ne!(new.metadata.uid, old.metadata.uid);
    let labels = |j: &k8s_openapi::api::batch::v1::Job| {
        j.spec
            .clone()
            .unwrap()
            .template
            .metadata
            .unwrap()
            .labels
            .unwrap()
    };
    assert_eq!(labels(&new).get("app").map(String::as_str), Some("nightly"));
    // The Job's status follows its pod's (the Job controller writes it).
    ok(kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Complete",
        "job/nightly",
        "--timeout=30s",
    ]));
    let owners = || {
        ok(kubectl(&[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            "batch.kubernetes.io/job-name=nightly",
            "-o",
            "jsonpath={range .items[*]}{.metadata.ownerReferences[0].uid} {end}",
        ]))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while owners().contains(old.metadata.uid.as_deref().unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the old Job's pod is still there 30 s later: {}",
            owners()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // A CronJob's Job is not re-created (it would run the CronJob's old template): refused in
    // one line, the hint the command that runs the CronJob's current template.
    ok(kubectl(&[
        "create",
        "cronjob",
        "nightly-cron",
        "-n",
        ns,
        "--image=unloop.test/app:1.0",
        "--schedule=0 0 1 1 *",
        "--",
        "/app/testapp",
        "exit",
        "0",
    ]));
    ok(kubectl(&[
        "create",
        "job",
        "from-cron",
        "-n",
        ns,
        "--from=cronjob/nightly-cron",
    ]));
    let refused = unloop(&[
        "retry",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "job/from-cron",
        "--yes",
    ]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.starts_with("error: job/from-cron was made by cronjob/nightly-cron: re-created, it would run the CronJob's old template"),
        "{err}"
    );
    assert!(
        err.contains("kubectl create job nightly-cron-retry --from=cronjob/nightly-cron -n retry-job-e2e, then unloop diagnose job/nightly-cron-retry -n retry-job-e2e --watch"),
        "{err}"
    );

    let broken = unloop(&[
        "retry",
        "--kubeconfig",
        &kc,
        "-n",
        ns,
        "job/broken",
        "--yes",
        "--timeout",
        "60s",
    ]);
    let out = String::from_utf8_lossy(&broken.stdout);
    let err = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("failed again"), "{err}");
    assert!(
        out.contains("broken-config"),
        "the new diagnosis names the ConfigMap: {out}"
    );
}

/// A follow that neither ends fixed nor fails again within `--timeout` exits 6 with one line (and
/// a hint); on a terminal its status line redraws itself in place and its clock moves, while
/// through a pipe it prints plain lines. Two copies of fixed-but-backing-off: `stuck` left broken,
/// followed through a pipe just after its third crash (20 s of backoff ahead, `--timeout 6s`); `steady`
/// given its ConfigMap, Ready, followed under a pty (`script`, util-linux) with a settle period
/// longer than the timeout, so its settle clock counts on the status line.
#[test]
fn a_follow_times_out_with_exit_6_and_redraws_on_a_terminal() {
    let ns = "watch-tty-e2e";
    let kc = kubeconfig();
    let read = |path: &str| std::fs::read_to_string(repo_root().join(path)).unwrap();
    let manifest = read("testbed/scenarios/fixed-but-backing-off/manifest.yaml");
    let configmap = read("testbed/scenarios/fixed-but-backing-off/configmap.yaml");
    let copy = |text: &str, app: &str| {
        text.replace("fixed-but-backing-off", ns)
            .replace("payments", app)
    };
    let sandbox = Sandbox::new(ns, "follow timeout and terminal test");
    sandbox.apply("stuck.yaml", &copy(&manifest, "stuck"));
    sandbox.apply("steady-cm.yaml", &copy(&configmap, "steady"));
    sandbox.apply("steady.yaml", &copy(&manifest, "steady"));
    ok(kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Available",
        "deploy/steady",
        "--timeout=60s",
    ]));
    // The moment `stuck` has crashed after its second restart (the first is at once, the second
    // after 10 s): the kubelet waits 20 s now.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut seen = first_container(ns, "stuck").0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (restarts, running) = first_container(ns, "stuck");
        if restarts >= 2 && restarts > seen && !running {
            break;
        }
        if !running {
            seen = seen.max(restarts);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no restart within 90 s: {restarts} {running}"
        );
    }
    let bin = env!("CARGO_BIN_EXE_unloop");
    let watch = |app: &str, settle: &str| -> Vec<String> {
        [
            "diagnose",
            "--kubeconfig",
            &kc,
            "-n",
            ns,
            &format!("deploy/{app}"),
            "--watch",
            "--settle",
            settle,
            "--timeout",
            "6s",
        ]
        .map(String::from)
        .to_vec()
    };
    // Under a pty, as a user's terminal: colour allowed, TERM set. The command line for script's
    // shell is quoted by the one renderer.
    let steady = watch("steady", "60s");
    let words: Vec<&str> = steady.iter().map(String::as_str).collect();
    let line = unloop_core::shell::render(&unloop_core::shell::Cmd::new(bin, &words).into());
    let tty = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let stuck = watch("stuck", "5s");
    let piped = unloop(&stuck.iter().map(String::as_str).collect::<Vec<_>>());
    let tty = tty.wait_with_output().unwrap();

    // Through a pipe: exit 6, plain lines, one error line and its hint.
    let err = String::from_utf8_lossy(&piped.stderr);
    assert_eq!(piped.status.code(), Some(6), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("stuck-"), "{err}");
    assert!(lines[0].contains("(2 restarts)"), "{err}");
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with("error: deploy/stuck neither fixed nor failed again within"),
        "{err}"
    );
    assert!(lines.last().unwrap().starts_with("hint: "), "{err}");

    // On the terminal: the same end, the line redrawn in place each second, its clock moving.
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert_eq!(tty.status.code(), Some(6), "{screen:?}");
    let redraws = screen.matches("\r\x1b[2K").count();
    assert!(redraws >= 4, "{redraws} redraws: {screen:?}");
    let clock: Vec<u32> = screen
        .split("; ready ")
        .skip(1)
        .filter_map(|s| s.split('s').next()?.parse().ok())
        .collect();
    let mut distinct = clock.clone();
    distinct.dedup();
    assert!(distinct.len() >= 3, "the settle clock moves: {clock:?}");
    assert!(
        distinct.windows(2).all(|w| w[1] > w[0]),
        "and counts up: {clock:?}"
    );
    assert!(screen.contains("of 60s"), "{screen:?}");
    assert!(
        screen.contains("deploy/steady neither fixed nor failed again within"),
        "{screen:?}"
    );
    // Every escape sequence is unloop's own (the redraw, colour): none comes from the cluster.
    for (i, _) in screen.match_indices('\x1b') {
        let rest = &screen[i + 1..];
        let params = rest.strip_prefix('[').unwrap_or_default();
        let sgr = params
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
            .starts_with('m');
        assert!(
            rest.starts_with("[2K") || sgr,
            "a foreign escape sequence: {:?}",
            &screen[i..(i + 12).min(screen.len())]
        );
    }
}

/// The in-place resize stopgap for an OOM kill, run exactly as unloop prints it, is accepted by
/// the real API server and the kubelet: a copy of the oom-limit scenario in a namespace of its
/// own, diagnosed live after its first OOM kill; the printed `kubectl patch pod ... --subresource
/// resize` runs in a shell, and the pod's spec then holds the new limit. About 15 s.
#[test]
fn the_in_place_resize_stopgap_is_accepted_by_the_api_server() {
    let ns = "resize-e2e";
    let kc = kubeconfig();
    let manifest =
        std::fs::read_to_string(repo_root().join("testbed/scenarios/oom-limit/manifest.yaml"))
            .unwrap()
            .replace("oom-limit", ns);
    let sandbox = Sandbox::new(ns, "in-place resize stopgap");
    sandbox.apply("oom.yaml", &manifest);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while first_container(ns, "worker").0 < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no OOM kill within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let out = unloop(&["diagnose", "--kubeconfig", &kc, "-n", ns, "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let command = report["diagnoses"][0]["remedies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("stopgap"))
        })
        .and_then(|r| r["command"].as_str())
        .unwrap_or_else(|| panic!("no resize stopgap: {report}"))
        .to_string();
    assert!(command.contains("--subresource resize"), "{command}");
    // kubectl as the test-all run has it (KUBECTL), first on PATH for the pasted line.
    let path = match std::env::var("KUBECTL") {
        Ok(k) => format!(
            "{}:{}",
            std::path::Path::new(&k).parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
        Err(_) => std::env::var("PATH").unwrap_or_default(),
    };
    let ran = Command::new("sh")
        .args(["-c", &command])
        .env("KUBECONFIG", &kc)
        .env("PATH", path)
        .output()
        .unwrap();
    let limit = kubectl(&[
        "-n",
        ns,
        "get",
        "pods",
        "-l",
        "app=worker",
        "-o",
        "jsonpath={.items[0].spec.containers[0].resources.limits.memory}",
    ]);
    assert!(
        ran.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&limit.stdout), "256Mi");
}
