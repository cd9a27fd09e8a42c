//! Whether the kubelet restarts a container that exited: the one answer for every part of unloop
//! (what counts as a crash loop, what an exit code means, the report's restart sentence).
//!
//! The kubelet decides in this order (ContainerRestartRules, KEP-5307, beta and on in 1.35):
//! the container's `restartPolicyRules`, first match wins (`Restart` on exit codes `In` or `NotIn`
//! a list); if none matches, the container's own `restartPolicy` (Always, OnFailure, Never); if it
//! has none, the pod's (`Always` by default). A native sidecar is an init container with
//! `restartPolicy: Always`; a plain init container restarts only on failure, and never under a
//! pod-level `Never`. Seen on the testbed's 1.35.4 kubelet: a `restartPolicy: Never` pod whose
//! container restarts on exit 3 crash-loops on exit 3 (phase Running, restarts counting), and ends
//! Failed on exit 4; a container-level `Never` with no matching rule stops even in a pod whose
//! policy is `Always`; a container-level `Always` restarts a clean exit 0 in a `Never` pod.
//!
//! Rules are typed: k8s-openapi 0.29 (`latest`, 1.35) has `Container::restart_policy_rules`.

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// A restart policy, pod- or container-level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Always,
    OnFailure,
    Never,
}

impl Policy {
    /// The API's word for it; an unknown word is None (the kubelet ignores it and falls back).
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "Always" => Some(Policy::Always),
            "OnFailure" => Some(Policy::OnFailure),
            "Never" => Some(Policy::Never),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Always => "Always",
            Policy::OnFailure => "OnFailure",
            Policy::Never => "Never",
        }
    }

    fn restarts(self, code: i32) -> bool {
        match self {
            Policy::Always => true,
            Policy::OnFailure => code != 0,
            Policy::Never => false,
        }
    }
}

/// What decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Because {
    /// `restartPolicyRules[index]` matched the exit code (its action is Restart).
    Rule { index: usize, rule: String },
    /// No rule matched (`rules` is how they read, empty when there are none): the container's own
    /// restartPolicy decided.
    ContainerPolicy { policy: Policy, rules: String },
    /// The pod's restartPolicy decided (the container sets none).
    PodPolicy(Policy),
    /// A plain init container: it restarts on failure unless the pod's policy is Never.
    InitContainer(Policy),
    /// A native sidecar (an init container with restartPolicy Always): restarted after any exit.
    Sidecar,
}

/// The kubelet's decision on one exit of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnExit {
    pub code: i32,
    pub restarts: bool,
    pub because: Because,
}

/// The pod's own restartPolicy, None when it sets none (or a word the kubelet does not know): the
/// API server then defaults it to Always, but a Job's template must say Never or OnFailure.
pub fn pod_policy(pod: Option<&PodSpec>) -> Option<Policy> {
    pod.and_then(|p| p.restart_policy.as_deref())
        .and_then(Policy::parse)
}

/// Whether container `c` is a native sidecar: an init container with restartPolicy Always, which
/// runs for the pod's life beside the regular containers (its probes and resources matter like
/// theirs; a plain init container may have no probes at all).
pub fn sidecar(c: &Container, init: bool) -> bool {
    init && c.restart_policy.as_deref() == Some("Always")
}

/// Whether container `c` is long-running: the kubelet restarts it even after a clean exit (exit 0),
/// so finishing is not how it ends and a command that returns is a crash loop. A sidecar, a
/// container under restartPolicy Always (its own, else the pod's), or one whose
/// restartPolicyRules restart exit 0. `pod_policy` is the pod's (see [`pod_policy`]).
pub fn long_running(pod_policy: Policy, c: &Container, init: bool) -> bool {
    decide(pod_policy, Some(c), init, 0).restarts
}

/// How a container killed by the kubelet (a failed liveness or startup probe) exits: SIGKILL at
/// the end of the grace period (137), or death by SIGTERM (143). An app that handles SIGTERM exits
/// with its own code (a Go program as PID 1: 2, seen on the testbed), which no manifest tells.
pub const KILL_EXITS: [i32; 2] = [137, 143];

/// Whether the kubelet restarts container `c` after killing it on a failed liveness or startup
/// probe (either exit of [`KILL_EXITS`]): only then is a probe that kills a slow start a crash
/// loop. A container that is not restarted just ends, failed (a `restartPolicy: Never` Job's pod,
/// or a container whose restartPolicyRules restart only the app's own "retry me" code).
pub fn restarted_after_kill(pod_policy: Policy, c: &Container, init: bool) -> bool {
    KILL_EXITS
        .iter()
        .any(|&code| decide(pod_policy, Some(c), init, code).restarts)
}

/// Whether the kubelet restarts container `c` of a pod with spec `pod` after it exits with `code`.
/// `init` is true for init containers (a sidecar is one, with restartPolicy Always).
pub fn on_exit(pod: Option<&PodSpec>, c: Option<&Container>, init: bool, code: i32) -> OnExit {
    decide(pod_policy(pod).unwrap_or(Policy::Always), c, init, code)
}

/// [`on_exit`] with the pod's restartPolicy given (audit knows a Job template's default).
pub fn decide(pod_policy: Policy, c: Option<&Container>, init: bool, code: i32) -> OnExit {
    let decided = |restarts, because| OnExit {
        code,
        restarts,
        because,
    };
    if let Some(policy) = c
        .and_then(|c| c.restart_policy.as_deref())
        .and_then(Policy::parse)
    {
        let rules = c
            .and_then(|c| c.restart_policy_rules.as_deref())
            .unwrap_or_default();
        for (index, rule) in rules.iter().enumerate() {
            let Some(on) = rule.exit_codes.as_ref() else {
                continue;
            };
            let listed = on.values.iter().flatten().any(|v| *v == code);
            let matched = match on.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            if !matched {
                continue;
            }
            // The first rule that matches decides. Restart (and the alpha RestartAllContainers,
            // which restarts this container with the others) restart it; an action the kubelet
            // does not know leaves the decision to the container's policy, as the kubelet does.
            if matches!(rule.action.as_str(), "Restart" | "RestartAllContainers") {
                return decided(
                    true,
                    Because::Rule {
                        index,
                        rule: describe_rules(&rules[index..=index]),
                    },
                );
            }
            break;
        }
        if init && policy == Policy::Always && rules.is_empty() {
            return decided(true, Because::Sidecar);
        }
        let rules = describe_rules(rules);
        // A plain init container that completed is done, whatever its policy says.
        let restarts = policy.restarts(code) && !(init && policy != Policy::Always && code == 0);
        return decided(restarts, Because::ContainerPolicy { policy, rules });
    }
    if init {
        let restarts = code != 0 && pod_policy != Policy::Never;
        return decided(restarts, Because::InitContainer(pod_policy));
    }
    decided(pod_policy.restarts(code), Because::PodPolicy(pod_policy))
}

/// `Restart on exit codes In [3]; Restart on exit codes NotIn [0, 1]`.
fn describe_rules(rules: &[k8s_openapi::api::core::v1::ContainerRestartRule]) -> String {
    rules
        .iter()
        .map(|r| match r.exit_codes.as_ref() {
            Some(on) => {
                let values: Vec<String> = on.values.iter().flatten().map(i32::to_string).collect();
                format!(
                    "{} on exit codes {} [{}]",
                    r.action,
                    on.operator,
                    values.join(", ")
                )
            }
            None => r.action.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl OnExit {
    /// Whether the container's own restart settings (rules, or a container-level policy) decided:
    /// then the report says what they decide, since the pod's restartPolicy does not tell.
    pub fn container_decides(&self) -> bool {
        matches!(
            self.because,
            Because::Rule { .. } | Because::ContainerPolicy { .. }
        )
    }

    /// Why the kubelet restarts the container after this exit, when it does:
    /// `its restartPolicyRules[0] (Restart on exit codes In [3]) restart exit 3`.
    pub fn reason(&self) -> Option<String> {
        let code = self.code;
        if !self.restarts {
            return None;
        }
        Some(match &self.because {
            Because::Rule { index, rule } => {
                format!("its restartPolicyRules[{index}] ({rule}) restart exit {code}")
            }
            Because::ContainerPolicy { policy, .. } => {
                format!(
                    "its own restartPolicy {} restarts exit {code}",
                    policy.as_str()
                )
            }
            Because::PodPolicy(p) | Because::InitContainer(p) => {
                format!(
                    "the pod's restartPolicy {} restarts exit {code}",
                    p.as_str()
                )
            }
            Because::Sidecar => "a sidecar restarts after any exit".into(),
        })
    }

    /// One sentence for the report: whether the kubelet restarts the container after this exit,
    /// and why.
    pub fn sentence(&self) -> String {
        let code = self.code;
        match &self.because {
            Because::Rule { index, rule } => format!(
                "the kubelet restarts it after exit {code}: its restartPolicyRules[{index}] ({rule}) match, whatever the pod's restartPolicy"
            ),
            Because::ContainerPolicy { policy, rules } if !rules.is_empty() => {
                if self.restarts {
                    format!(
                        "exit {code} matches none of its restartPolicyRules ({rules}); its own restartPolicy {} restarts it",
                        policy.as_str()
                    )
                } else {
                    format!(
                        "exit {code} is outside its restartPolicyRules ({rules}) and its own restartPolicy is {}: the kubelet does not restart it, the container has stopped for good",
                        policy.as_str()
                    )
                }
            }
            Because::ContainerPolicy { policy, .. } => {
                if self.restarts {
                    format!(
                        "its own restartPolicy {} restarts it after exit {code}, whatever the pod's",
                        policy.as_str()
                    )
                } else {
                    format!(
                        "its own restartPolicy {} does not restart it after exit {code}: the container has stopped for good",
                        policy.as_str()
                    )
                }
            }
            Because::Sidecar => "a sidecar: the kubelet restarts it after any exit".into(),
            Because::PodPolicy(p) | Because::InitContainer(p) => {
                if self.restarts {
                    format!(
                        "the pod's restartPolicy {} restarts it after exit {code}",
                        p.as_str()
                    )
                } else {
                    format!(
                        "the pod's restartPolicy {} does not restart it after exit {code}",
                        p.as_str()
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    /// The captured `restart-rules` pod: restartPolicy Never, its container Never with
    /// `Restart on exit codes In [3]`, crash-looping on exit 3 on the testbed's kubelet.
    fn captured() -> (PodSpec, Container) {
        let mut state = testing::scenario("restart-rules");
        let spec = testing::pod(&mut state).spec.clone().unwrap();
        let c = spec.containers[0].clone();
        (spec, c)
    }

    #[test]
    fn the_rule_restarts_the_listed_exit_and_no_other() {
        let (spec, c) = captured();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let three = on_exit(Some(&spec), Some(&c), false, 3);
        assert!(three.restarts);
        assert!(matches!(three.because, Because::Rule { index: 0, .. }));
        assert!(three.sentence().contains("restartPolicyRules[0]"));
        let four = on_exit(Some(&spec), Some(&c), false, 4);
        assert!(!four.restarts);
        assert!(four.sentence().contains("stopped for good"));
        assert!(four.sentence().contains("In [3]"));
        // exit 0 too: the container's own policy is Never.
        assert!(!on_exit(Some(&spec), Some(&c), false, 0).restarts);
    }

    #[test]
    fn not_in_matches_every_code_but_the_listed() {
        let (spec, mut c) = captured();
        let on = c.restart_policy_rules.as_mut().unwrap()[0]
            .exit_codes
            .as_mut()
            .unwrap();
        on.operator = "NotIn".into();
        assert!(!on_exit(Some(&spec), Some(&c), false, 3).restarts);
        assert!(on_exit(Some(&spec), Some(&c), false, 4).restarts);
    }

    /// Seen on the testbed: a container-level Never stops the container in an Always pod, and a
    /// container-level Always restarts a clean exit in a Never pod.
    #[test]
    fn the_container_policy_overrides_the_pods() {
        let (mut spec, mut c) = captured();
        c.restart_policy_rules = None;
        spec.restart_policy = Some("Always".into());
        assert!(!on_exit(Some(&spec), Some(&c), false, 1).restarts);
        spec.restart_policy = Some("Never".into());
        c.restart_policy = Some("Always".into());
        assert!(on_exit(Some(&spec), Some(&c), false, 0).restarts);
        c.restart_policy = Some("OnFailure".into());
        assert!(!on_exit(Some(&spec), Some(&c), false, 0).restarts);
        assert!(on_exit(Some(&spec), Some(&c), false, 2).restarts);
    }

    /// What audit asks: does a clean exit restart the container (long-running), does a kill on
    /// a failed probe (137 or 143)?
    #[test]
    fn long_running_and_restarted_after_a_kill() {
        let (spec, mut c) = captured();
        let pod = pod_policy(Some(&spec)).unwrap();
        assert_eq!(pod, Policy::Never);
        // Restart In [3]: a clean exit ends it, and so does a kill.
        assert!(!long_running(pod, &c, false));
        assert!(!restarted_after_kill(pod, &c, false));
        c.restart_policy_rules.as_mut().unwrap()[0]
            .exit_codes
            .as_mut()
            .unwrap()
            .values = Some(vec![3, 143]);
        assert!(restarted_after_kill(pod, &c, false));
        assert!(!long_running(pod, &c, false));
        // Its own Always, no rules: long-running in a Never pod; as an init container, a sidecar.
        c.restart_policy_rules = None;
        c.restart_policy = Some("Always".into());
        assert!(long_running(pod, &c, false));
        assert!(sidecar(&c, true) && !sidecar(&c, false));
        assert!(long_running(pod, &c, true) && restarted_after_kill(pod, &c, true));
        // A plain init container: restarted after a kill under OnFailure, never long-running.
        c.restart_policy = None;
        assert!(!sidecar(&c, true));
        assert!(restarted_after_kill(Policy::OnFailure, &c, true));
        assert!(!long_running(Policy::Always, &c, true));
        // Without settings the pod decides; a pod that sets none is Always.
        assert_eq!(pod_policy(None), None);
        assert!(long_running(Policy::Always, &c, false));
        assert!(!restarted_after_kill(Policy::Never, &c, false));
    }

    #[test]
    fn without_container_settings_the_pod_decides() {
        let (mut spec, mut c) = captured();
        c.restart_policy = None;
        c.restart_policy_rules = None;
        assert!(!on_exit(Some(&spec), Some(&c), false, 3).restarts);
        spec.restart_policy = Some("OnFailure".into());
        assert!(on_exit(Some(&spec), Some(&c), false, 3).restarts);
        assert!(!on_exit(Some(&spec), Some(&c), false, 0).restarts);
        spec.restart_policy = None;
        assert!(on_exit(Some(&spec), Some(&c), false, 0).restarts);
        // A plain init container: on failure only, never under Never.
        assert!(!on_exit(Some(&spec), Some(&c), true, 0).restarts);
        assert!(on_exit(Some(&spec), Some(&c), true, 1).restarts);
        spec.restart_policy = Some("Never".into());
        assert!(!on_exit(Some(&spec), Some(&c), true, 1).restarts);
        // A sidecar: an init container with restartPolicy Always.
        c.restart_policy = Some("Always".into());
        assert!(on_exit(Some(&spec), Some(&c), true, 0).restarts);
    }
}
