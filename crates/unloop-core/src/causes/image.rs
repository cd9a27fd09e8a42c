//! Images that cannot be pulled or are not present.

use crate::shell::Arg;
use crate::subject::{About, Finding, Subject, container_patch};
use crate::verdict::{Cause, CauseId, Confidence, Remedy};

const PULL_REASONS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "ImageInspectError",
];

pub fn detect(s: &Subject) -> Vec<Finding> {
    let Some(reason) = s.waiting_reason().filter(|r| PULL_REASONS.contains(r)) else {
        return Vec::new();
    };
    let id = CauseId::ImagePull;
    let image = s.spec.image.clone().unwrap_or_default();
    let policy = s
        .spec
        .image_pull_policy
        .as_deref()
        .unwrap_or("IfNotPresent");
    let summary = match reason {
        "ErrImageNeverPull" => {
            format!("the image {image} is not on the node and imagePullPolicy is Never")
        }
        "InvalidImageName" => format!("the image name {image} is not valid"),
        _ => format!("the image {image} cannot be pulled"),
    };
    let mut cause = Cause::new(id, Confidence::High, summary);
    let msg = s.waiting_message().unwrap_or_default();
    cause.evidence.push(s.field(
        "state.waiting",
        if msg.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}: {msg}")
        },
    ));
    // The kubelet's Failed event carries the registry's own words (not found, unauthorized, refused).
    for e in s.container_events(&["Failed"]).iter().rev().take(1) {
        cause.evidence.push(s.event_evidence(e));
    }
    let mut remedies = Vec::new();
    if reason == "ErrImageNeverPull" {
        remedies.push(Remedy::fix(
            id,
            "let the kubelet pull it (imagePullPolicy IfNotPresent), or load the image onto the node first",
            s.settable().map(|w| {
                let patch = container_patch(s.container(), "imagePullPolicy", &"IfNotPresent");
                s.kubectl(&["patch"], w)
                    .flag_value("--type", "strategic")
                    .flag_value("-p", patch)
                    .into()
            }),
        ));
    } else {
        remedies.push(Remedy::fix(
            id,
            format!("check the image name and tag, and that the registry is reachable from the node (policy {policy}); then set the right image"),
            s.settable().map(|w| {
                s.kubectl(&["set", "image"], w)
                    .operand(Arg::lit(format!("{}=", s.container())).then_placeholder("image:tag"))
                    .into()
            }),
        ));
        if s.pod
            .spec
            .as_ref()
            .and_then(|p| p.image_pull_secrets.as_ref())
            .is_none_or(|v| v.is_empty())
            && msg.to_ascii_lowercase().contains("unauthorized")
        {
            let create = s
                .kubectl(&["create", "secret", "docker-registry"], "regcred")
                .flag(Arg::lit("--docker-server=").then_placeholder("registry"))
                .flag(Arg::lit("--docker-username=").then_placeholder("user"))
                .flag(Arg::lit("--docker-password=").then_placeholder("password"));
            remedies.push(Remedy::fix(
                id,
                "the registry wants credentials: add an imagePullSecret",
                Some(create.into()),
            ));
        }
    }
    // Pulls that never reach the registry fail for every image on it: the registry is the thing
    // to fix, not the image.
    let about = match registry(&image).filter(|_| unreachable(&format!("{msg} {}", events_text(s)))) {
        Some(host) => About::Registry(host.to_string()),
        None => About::Image(image),
    };
    vec![Finding { cause, remedies, about }]
}

/// The registry host of an image reference (`10.0.0.1:5000/a/b:1`, `registry.example/x`), none for
/// Docker Hub's short names (`nginx`, `library/nginx`).
fn registry(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// Whether a pull error says the registry could not be reached at all (as containerd words it).
fn unreachable(msg: &str) -> bool {
    [
        "dial tcp",
        "connection refused",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "no route to host",
    ]
    .iter()
    .any(|w| msg.contains(w))
}

fn events_text(s: &Subject) -> String {
    s.container_events(&["Failed"])
        .iter()
        .filter_map(|e| e.message.as_deref())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, scenario};

    #[test]
    fn an_image_that_cannot_be_pulled() {
        let state = scenario("image-pull-error");
        let f = finding(&state, detect, CauseId::ImagePull);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(f.cause.summary.contains("cannot be pulled"));
        assert!(cites(&f, "10.231.0.1:5999/payments/api:1.4.2"));
        assert!(f.remedies[0].command().unwrap().contains("set image"));
    }

    #[test]
    fn never_pull_offers_the_pull_policy() {
        let mut state = scenario("image-never-pull");
        let f = finding(&state, detect, CauseId::ImagePull);
        assert!(f.cause.summary.contains("imagePullPolicy is Never"));
        assert!(f.remedies[0].command().unwrap().contains("IfNotPresent"));
        testing::status(&mut state)
            .state
            .as_mut()
            .unwrap()
            .waiting
            .as_mut()
            .unwrap()
            .reason = Some("CrashLoopBackOff".into());
        assert!(testing::run(&state, detect).is_empty());
    }

    #[test]
    fn a_running_pod_has_its_image() {
        assert!(testing::run(&testing::healthy(), detect).is_empty());
    }
}
