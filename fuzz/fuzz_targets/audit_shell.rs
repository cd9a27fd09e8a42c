//! The audit's reading of `sh -c SCRIPT` entrypoints (and the JVM, memory and CPU checks) on a
//! workload whose command, script, JAVA_OPTS and resource quantities are fuzzed. The workload is
//! the captured `entrypoint-backgrounds` manifest's Deployment with those fields replaced, loaded
//! through the public loader as `unloop audit` would.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const SHELLS: [&str; 4] = ["sh", "/bin/bash", "ash", "busybox"];
const FLAGS: [&str; 4] = ["-c", "-ec", "-xc", "--"];

#[derive(Debug, Arbitrary)]
struct Input {
    shell: u8,
    flag: u8,
    script: String,
    /// The script as `args` under `command: [shell]` instead of all in `command`.
    in_args: bool,
    extra: Vec<String>,
    java_opts: Option<String>,
    memory_limit: Option<String>,
    memory_request: Option<String>,
    cpu_limit: Option<String>,
}

fuzz_target!(|input: Input| {
    let shell = SHELLS[input.shell as usize % SHELLS.len()];
    let flag = FLAGS[input.flag as usize % FLAGS.len()];
    let mut argv: Vec<serde_json::Value> = vec![json!(shell), json!(flag), json!(input.script)];
    argv.extend(input.extra.iter().take(4).map(|e| json!(e)));
    let mut container = json!({"name": "api", "image": "registry.example/api:3.3"});
    if input.in_args {
        let args = argv.split_off(1);
        container["command"] = json!(argv);
        container["args"] = json!(args);
    } else {
        container["command"] = json!(argv);
    }
    if let Some(v) = &input.java_opts {
        container["env"] = json!([{"name": "JAVA_OPTS", "value": v}]);
    }
    let mut limits = serde_json::Map::new();
    let mut requests = serde_json::Map::new();
    if let Some(v) = &input.memory_limit {
        limits.insert("memory".into(), json!(v));
    }
    if let Some(v) = &input.cpu_limit {
        limits.insert("cpu".into(), json!(v));
    }
    if let Some(v) = &input.memory_request {
        requests.insert("memory".into(), json!(v));
    }
    container["resources"] = json!({"limits": limits, "requests": requests});
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [container]},
            },
        },
    });
    let text = serde_json::to_string(&deployment).expect("serialisable");
    if let Some(inv) = unloop_fuzz::audit_load(text.as_bytes()) {
        unloop_fuzz::audit_and_render(&inv);
    }
});
