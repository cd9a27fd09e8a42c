//! Every path into a `ClusterState` redacts: a captured bundle with secrets planted in one field
//! each, read as a bundle and as `kubectl get -o json` output, and written back out as a snapshot
//! bundle, holds none of them.

use std::io::Read;
use std::path::PathBuf;

const SECRETS: [&str; 4] = [
    "KsPw-9f3e1c",
    "TermPw-77a1b2",
    "EnvPw-31aa7f",
    "AnnKey-4d4d91",
];

fn captured() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios/jvm-heap/bundle.json.gz");
    let bytes = std::fs::read(path).unwrap();
    serde_json::from_reader(flate2::read::GzDecoder::new(&bytes[..])).unwrap()
}

fn planted_pod(pod: &mut serde_json::Value) {
    let opts = pod["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    pod["spec"]["containers"][0]["env"][0]["value"] =
        format!("{opts} -Djavax.net.ssl.keyStorePassword=KsPw-9f3e1c").into();
    pod["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "MYSQL_ROOT_PASSWORD", "value": "EnvPw-31aa7f"}));
    pod["metadata"]["annotations"]["example.com/db-token"] = "AnnKey-4d4d91".into();
    pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"] =
        "login failed: password=TermPw-77a1b2".into();
}

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds {s}");
    }
    assert!(
        text.contains("keyStorePassword=<redacted>"),
        "{what}: {text}"
    );
}

#[test]
fn bundles_and_snapshots_of_them_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = captured();
    planted_pod(&mut doc["state"]["pods"][0]);
    let input = dir.path().join("in.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&input).unwrap(),
        flate2::Compression::fast(),
    );
    serde_json::to_writer(&mut gz, &doc).unwrap();
    gz.finish().unwrap();

    let state = unloop_source::bundle::read(&input).unwrap();
    assert_clean(
        "state read from a bundle",
        &serde_json::to_string(&state).unwrap(),
    );
    let out = dir.path().join("out.json.gz");
    unloop_source::bundle::write(&out, &state).unwrap();
    let mut written = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap())
        .read_to_string(&mut written)
        .unwrap();
    assert_clean("snapshot written from it", &written);
}

#[test]
fn kubectl_json_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = captured()["state"]["pods"][0].clone();
    planted_pod(&mut pod);
    pod["kind"] = "Pod".into();
    pod["apiVersion"] = "v1".into();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [pod]});
    let input = dir.path().join("pods.json");
    std::fs::write(&input, serde_json::to_vec(&list).unwrap()).unwrap();
    let state = unloop_source::files::load(&input).unwrap();
    assert_eq!(state.pods.len(), 1);
    assert_clean(
        "state read from kubectl JSON",
        &serde_json::to_string(&state).unwrap(),
    );
}
