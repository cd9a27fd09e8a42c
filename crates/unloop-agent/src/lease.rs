//! Leader election on a `coordination.k8s.io` Lease: every replica watches and diagnoses (a hot
//! standby), only the holder of the lease publishes. The decision is pure ([`decide`]); the
//! write is an update with the lease's resourceVersion, so two replicas cannot both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// What a replica does with the lease as it finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// This replica holds it: renew it.
    Renew,
    /// Another replica holds it and renewed it in time.
    Follow { holder: String },
    /// This replica's watches have not listed yet: it leaves the lease to a replica that can
    /// publish now (a replacement pod would otherwise take a released lease from the hot standby).
    Wait,
}

/// Decides from the lease's spec (None: no lease yet) and whether this replica is `ready` (its
/// watches have listed). A lease without a renew time or duration counts as expired.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp, ready: bool) -> Decision {
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    if !ready {
        return Decision::Wait;
    }
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    let expires = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(t), Some(d)) => t.0 + jiff::SignedDuration::from_secs(i64::from(d)),
        _ => return Decision::Acquire,
    };
    if holder.is_empty() || expires <= now {
        Decision::Acquire
    } else {
        Decision::Follow {
            holder: holder.to_string(),
        }
    }
}

/// The lease's spec after `decision`, made by `me` at `now`.
pub fn next_spec(
    old: Option<&LeaseSpec>,
    decision: &Decision,
    me: &str,
    now: Timestamp,
    duration: Duration,
) -> Option<LeaseSpec> {
    let mut spec = old.cloned().unwrap_or_default();
    match decision {
        Decision::Follow { .. } | Decision::Wait => return None,
        Decision::Acquire => {
            spec.holder_identity = Some(me.to_string());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0) + i32::from(old.is_some()));
        }
        Decision::Renew => {}
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration.as_secs().max(1) as i32);
    Some(spec)
}

/// The lease's spec when `me` gives it up (on shutdown): no holder and a one-second duration, so
/// the next replica to look takes it at once instead of waiting out the lease. None when `me` does
/// not hold it (nothing to give up).
pub fn released_spec(old: &LeaseSpec, me: &str, now: Timestamp) -> Option<LeaseSpec> {
    if old.holder_identity.as_deref() != Some(me) {
        return None;
    }
    let mut spec = old.clone();
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(1);
    Some(spec)
}

/// Gives the lease up if `me` holds it (an update with the resourceVersion read: if another
/// replica took it meanwhile, the 409 leaves it theirs). Ok(true) when it was released.
pub async fn release(api: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let Some(spec) = lease
        .spec
        .as_ref()
        .and_then(|s| released_spec(s, me, Timestamp::now()))
    else {
        return Ok(false);
    };
    lease.spec = Some(spec);
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// One round: read the lease, decide, write. Ok(true) when this replica holds the lease now.
///
/// `written` is the lease as this replica last wrote it. While it holds the lease, a round renews
/// from that copy without reading (one request instead of two, as client-go's leader election
/// does): the update carries the resourceVersion of that write, so if any other replica wrote
/// since, it fails with a 409 and the round goes on with a read.
pub async fn try_hold(
    api: &Api<Lease>,
    name: &str,
    me: &str,
    duration: Duration,
    ready: bool,
    written: &mut Option<Lease>,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    if let Some(mut lease) = written.take()
        && let Some(spec) = lease.spec.as_ref().and_then(|s| {
            let renew = decide(Some(s), me, now, ready);
            (renew == Decision::Renew)
                .then(|| next_spec(Some(s), &renew, me, now, duration))
                .flatten()
        })
    {
        lease.spec = Some(spec);
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(l) => {
                *written = Some(l);
                return Ok(true);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let current = api.get_opt(name).await?;
    let decision = decide(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        me,
        now,
        ready,
    );
    let Some(spec) = next_spec(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &decision,
        me,
        now,
        duration,
    ) else {
        return Ok(false);
    };
    let result = match current {
        Some(mut lease) => {
            // The resourceVersion read above: a replica that wrote in between makes this a 409.
            lease.spec = Some(spec);
            api.replace(name, &PostParams::default(), &lease).await
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(l) => {
            *written = Some(l);
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn held_by(who: &str, renewed: i64) -> LeaseSpec {
        next_spec(
            None,
            &Decision::Acquire,
            who,
            at(renewed),
            Duration::from_secs(15),
        )
        .unwrap()
    }

    #[test]
    fn a_replica_takes_a_free_or_expired_lease_and_follows_a_live_one() {
        assert_eq!(decide(None, "b", at(0), true), Decision::Acquire);
        let lease = held_by("a", 0);
        assert_eq!(
            decide(Some(&lease), "b", at(14), true),
            Decision::Follow { holder: "a".into() }
        );
        assert_eq!(decide(Some(&lease), "a", at(14), true), Decision::Renew);
        assert_eq!(decide(Some(&lease), "b", at(15), true), Decision::Acquire);
    }

    #[test]
    fn a_released_lease_is_taken_at_once_by_another_replica() {
        let held = held_by("a", 0);
        // Before the release, "b" follows for the whole lease duration.
        assert!(matches!(
            decide(Some(&held), "b", at(1), true),
            Decision::Follow { .. }
        ));
        let released = released_spec(&held, "a", at(1)).expect("a holds it");
        assert_eq!(decide(Some(&released), "b", at(1), true), Decision::Acquire);
        // Only the holder can give it up.
        assert_eq!(released_spec(&held, "b", at(1)), None);
    }

    #[test]
    fn a_replica_whose_watches_have_not_listed_takes_no_lease() {
        // A replacement pod starting while the lease is free or released leaves it to the
        // standby, which can publish at once.
        let released = released_spec(&held_by("a", 0), "a", at(1)).unwrap();
        assert_eq!(decide(Some(&released), "c", at(1), false), Decision::Wait);
        assert_eq!(decide(None, "c", at(1), false), Decision::Wait);
        assert_eq!(
            next_spec(
                Some(&released),
                &Decision::Wait,
                "c",
                at(1),
                Duration::from_secs(15)
            ),
            None
        );
        // Once listed, it takes it.
        assert_eq!(decide(Some(&released), "c", at(2), true), Decision::Acquire);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_holder() {
        let lease = held_by("a", 0);
        let renewed = next_spec(
            Some(&lease),
            &Decision::Renew,
            "a",
            at(5),
            Duration::from_secs(15),
        )
        .unwrap();
        assert_eq!(renewed.holder_identity.as_deref(), Some("a"));
        assert_eq!(renewed.acquire_time, lease.acquire_time);
        let taken = next_spec(
            Some(&lease),
            &Decision::Acquire,
            "b",
            at(20),
            Duration::from_secs(15),
        )
        .unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert!(
            next_spec(
                Some(&lease),
                &Decision::Follow { holder: "a".into() },
                "b",
                at(1),
                Duration::from_secs(15)
            )
            .is_none()
        );
    }
}
