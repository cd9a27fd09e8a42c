//! Images: a pinned tag, and imagePullPolicy Never only where the image is already on the nodes.

use super::{Context, Subject};
use crate::check::{CheckId, Finding, Fix};

/// An image reference split into its parts: `registry/repo:tag@digest`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ImageRef<'a> {
    /// An explicit registry host (`ghcr.io`, `10.0.0.1:5000`, `localhost`), if named.
    pub registry: Option<&'a str>,
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

pub(crate) fn parse_image(image: &str) -> ImageRef<'_> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, repo))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), repo)
        }
        _ => (None, name),
    };
    ImageRef {
        registry,
        repository,
        tag,
        digest,
    }
}

/// The fully qualified spelling the container runtime reports in node.status.images:
/// `docker.io/library/nginx:1.25` for `nginx:1.25`.
pub(crate) fn normalized(image: &str) -> String {
    let r = parse_image(image);
    let registry = r.registry.unwrap_or("docker.io");
    let repository = if r.registry.is_none() && !r.repository.contains('/') {
        format!("library/{}", r.repository)
    } else {
        r.repository.to_string()
    };
    let mut out = format!("{registry}/{repository}");
    if let Some(d) = r.digest {
        out.push('@');
        out.push_str(d);
    } else {
        out.push(':');
        out.push_str(r.tag.unwrap_or("latest"));
    }
    out
}

pub(crate) fn check(s: &Subject, ctx: &Context, out: &mut Vec<Finding>) {
    let Some(image) = s.container.image.as_deref().filter(|i| !i.is_empty()) else {
        return;
    };
    let r = parse_image(image);
    if r.digest.is_none() && r.tag.is_none_or(|t| t == "latest") {
        let what = if r.tag.is_none() {
            "has no tag (so it means latest)"
        } else {
            "uses the tag latest"
        };
        let base = image.split('@').next().unwrap_or(image);
        let base = base.strip_suffix(":latest").unwrap_or(base);
        out.push(s.finding(
            CheckId::ImageTagLatest,
            format!("image {image} {what}"),
            Fix::with_yaml(
                "pin a release tag (or a digest) so every node runs the same build and a rollback means something".to_string(),
                s.patch(vec![("image", format!("{base}:1.4.2").into())]),
            ),
        ));
    }
    if s.container.image_pull_policy.as_deref() != Some("Never") {
        return;
    }
    let fix = Fix::with_yaml(
        "let the kubelet pull the image when a node lacks it",
        s.patch(vec![("imagePullPolicy", "IfNotPresent".into())]),
    );
    // Live, the nodes say whether the image is there; from manifests, only an explicit registry
    // host says the image is meant to come from a registry.
    if let Some(obs) = ctx.observed.filter(|o| !o.nodes().is_empty()) {
        let want = normalized(image);
        let lacking: Vec<String> = obs
            .nodes()
            .iter()
            .filter(|n| {
                let images = n
                    .status
                    .as_ref()
                    .and_then(|st| st.images.as_deref())
                    .unwrap_or_default();
                !images
                    .iter()
                    .flat_map(|i| i.names.iter().flatten())
                    .any(|name| name == image || normalized(name) == want)
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        if !lacking.is_empty() {
            out.push(s.finding(
                CheckId::PullNeverRegistryImage,
                format!(
                    "imagePullPolicy is Never and image {image} is not on {} of {} nodes ({}): pods placed there fail with ErrImageNeverPull",
                    lacking.len(),
                    obs.nodes().len(),
                    lacking.join(", ")
                ),
                fix,
            ));
        }
        return;
    }
    if let Some(registry) = r.registry {
        out.push(s.finding(
            CheckId::PullNeverRegistryImage,
            format!(
                "imagePullPolicy is Never for {image}, an image from registry {registry}: the kubelet never pulls it, so a node that does not already have it fails with ErrImageNeverPull"
            ),
            fix,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let r = parse_image("10.231.0.1:5999/payments/api:1.4.2");
        assert_eq!(
            (r.registry, r.repository, r.tag),
            (Some("10.231.0.1:5999"), "payments/api", Some("1.4.2"))
        );
        let r = parse_image("nginx");
        assert_eq!((r.registry, r.repository, r.tag), (None, "nginx", None));
        let r = parse_image("localhost:5000/app@sha256:abc");
        assert_eq!(
            (r.registry, r.tag, r.digest),
            (Some("localhost:5000"), None, Some("sha256:abc"))
        );
        assert_eq!(normalized("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(normalized("unloop.test/app:3.0"), "unloop.test/app:3.0");
        assert_eq!(
            normalized("bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
    }
}
