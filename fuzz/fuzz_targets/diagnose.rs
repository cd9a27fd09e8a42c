//! The whole diagnose pipeline on a captured cluster state whose attacker-controlled fields are
//! fuzzed: the previous log, the termination message and reason, the exit code, waiting reasons,
//! env values, command and args, the image, the memory limit, event messages, and the pod's
//! namespace and name (changed everywhere they are referenced). The state goes through the same
//! scrub every reader applies, then diagnose, then every renderer.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use unloop_core::state::ContainerLog;

#[derive(Debug, Arbitrary)]
struct Input {
    scenario: u8,
    container: u8,
    log: Option<String>,
    exit_code: Option<i32>,
    term_reason: Option<String>,
    term_message: Option<String>,
    waiting_reason: Option<String>,
    waiting_message: Option<String>,
    restart_count: Option<i32>,
    env: Vec<(String, String)>,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    image: Option<String>,
    memory_limit: Option<String>,
    event_messages: Vec<String>,
    namespace: Option<String>,
    pod_name: Option<String>,
}

fn set(v: &mut Value, pointer: &str, new: Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
    }
}

fuzz_target!(|input: Input| {
    let states = &*unloop_fuzz::CAPTURED_STATES;
    let mut state = states[input.scenario as usize % states.len()].clone();
    // The troubled pod of the scenario (the bundles hold one pod, `healthy` aside).
    let Some(pod) = state.pods.first() else {
        return;
    };
    let mut pod = serde_json::to_value(pod).expect("pod serialises");
    let n = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    if n == 0 {
        return;
    }
    let i = input.container as usize % n;
    let container_name = pod["spec"]["containers"][i]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let c = format!("/spec/containers/{i}");
    if !input.env.is_empty() {
        let env: Vec<Value> = input
            .env
            .iter()
            .take(8)
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        set(&mut pod, &format!("{c}/env"), json!(env));
    }
    if let Some(cmd) = &input.command {
        pod["spec"]["containers"][i]["command"] = json!(cmd);
    }
    if let Some(args) = &input.args {
        pod["spec"]["containers"][i]["args"] = json!(args);
    }
    if let Some(image) = &input.image {
        pod["spec"]["containers"][i]["image"] = json!(image);
    }
    if let Some(m) = &input.memory_limit {
        pod["spec"]["containers"][i]["resources"] = json!({"limits": {"memory": m}});
    }
    // The status of the same container.
    if let Some(statuses) = pod["status"]["containerStatuses"].as_array_mut()
        && let Some(st) = statuses
            .iter_mut()
            .find(|s| s["name"].as_str() == Some(container_name.as_str()))
    {
        if input.exit_code.is_some() || input.term_reason.is_some() || input.term_message.is_some()
        {
            let t = &mut st["lastState"]["terminated"];
            if !t.is_object() {
                *t = json!({"exitCode": 1, "startedAt": "2026-11-24T20:49:00Z", "finishedAt": "2026-11-24T20:49:02Z"});
            }
            if let Some(code) = input.exit_code {
                t["exitCode"] = json!(code);
            }
            if let Some(r) = &input.term_reason {
                t["reason"] = json!(r);
            }
            if let Some(m) = &input.term_message {
                t["message"] = json!(m);
            }
        }
        if input.waiting_reason.is_some() || input.waiting_message.is_some() {
            st["state"] = json!({"waiting": {
                "reason": input.waiting_reason.as_deref().unwrap_or("CrashLoopBackOff"),
                "message": input.waiting_message.as_deref().unwrap_or(""),
            }});
        }
        if let Some(r) = input.restart_count {
            st["restartCount"] = json!(r);
        }
    }
    let old_ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let old_name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = input.namespace.clone().unwrap_or_else(|| old_ns.clone());
    let name = input.pod_name.clone().unwrap_or_else(|| old_name.clone());
    pod["metadata"]["namespace"] = json!(ns);
    pod["metadata"]["name"] = json!(name);
    let Ok(pod) = serde_json::from_value(pod) else {
        return;
    };
    state.pods[0] = pod;
    for e in &mut state.events {
        if e.involved_object.name.as_deref() == Some(old_name.as_str()) {
            e.involved_object.name = Some(name.clone());
            e.involved_object.namespace = Some(ns.clone());
        }
    }
    for (e, m) in state.events.iter_mut().zip(&input.event_messages) {
        e.message = Some(m.clone());
    }
    if input.log.is_some() {
        state
            .logs
            .retain(|l| l.pod != old_name || l.container != container_name);
    }
    for l in &mut state.logs {
        if l.pod == old_name {
            l.pod = name.clone();
            l.namespace = ns.clone();
        }
    }
    if let Some(text) = &input.log {
        state.logs.push(ContainerLog {
            namespace: ns.clone(),
            pod: name.clone(),
            container: container_name,
            previous: true,
            text: text.clone(),
            truncated: false,
        });
    }
    state.scope.namespaces = vec![ns];
    unloop_source::ingest::scrub(&mut state);
    unloop_fuzz::diagnose_and_render(&state);
});
