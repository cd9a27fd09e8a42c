//! The notification bodies, from a diagnosis of a captured scenario: the remedy is in them, text
//! from the cluster cannot make a Slack link or mention, and a secret-looking value that reached
//! the verdict is masked.

use std::path::PathBuf;

use unloop_agent::crd;
use unloop_agent::notify::Payload;
use unloop_core::diagnose::{Query, diagnose};
use unloop_source::bundle;

fn oom_spec() -> crd::CrashDiagnosisSpec {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios/oom-limit/bundle.json.gz");
    let state = bundle::read(&path).unwrap();
    let now = state.captured_at.unwrap();
    let report = diagnose(&state, &Query::default(), now);
    let key = unloop_agent::track::Key {
        namespace: report.diagnoses[0].namespace.clone(),
        workload: report.diagnoses[0].workload.clone(),
    };
    let (id, d) = crd::identified(&key, report).remove(0);
    crd::spec_of(&id, &d, &now.to_string(), now)
}

#[test]
fn the_json_body_carries_the_verdict_and_its_remedy() {
    let spec = oom_spec();
    let p = Payload::diagnosed("oom-limit", "deploy-worker-worker", &spec);
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["schemaVersion"], 1);
    assert_eq!(v["cause"], "oom-limit-too-low");
    assert_eq!(v["workload"], "deploy/worker");
    let fix = v["remedies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "fix")
        .expect("a fix");
    assert!(
        fix["command"].as_str().unwrap().contains("kubectl"),
        "{fix}"
    );
}

#[test]
fn slack_text_cannot_mention_or_link_and_secrets_are_masked() {
    let mut spec = oom_spec();
    // The one field this test is about: a summary carrying hostile text and a secret.
    spec.summary = "<!channel> see <https://evil.example|here> DB_PASSWORD=hunter2".into();
    let p = Payload::diagnosed("oom-limit", "deploy-worker-worker", &spec);
    let text = p.slack()["text"].as_str().unwrap().to_string();
    assert!(
        !text.contains("<!channel>") && !text.contains("<https://"),
        "{text}"
    );
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!serde_json::to_string(&p).unwrap().contains("hunter2"));
    assert!(
        text.contains("`kubectl"),
        "the fix's command in a code span: {text}"
    );
}

#[test]
fn a_resolved_notification_names_the_workload_and_the_cause_it_had() {
    let spec = oom_spec();
    let p = Payload::resolved("oom-limit", "deploy-worker-worker", &spec);
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["event"], "resolved");
    assert_eq!(v["cause"], "oom-limit-too-low");
    let text = p.slack()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("Resolved: *deploy/worker[worker]*"),
        "{text}"
    );
    assert!(text.contains("oom-limit-too-low"), "{text}");
    assert!(!text.contains("kubectl"), "no remedy once resolved: {text}");
}
