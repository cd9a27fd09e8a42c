//! `unloop retry`: skip the backoff of a workload whose cause is fixed (delete its troubled pods,
//! each by uid; its controller re-creates them at once; a failed Job is re-created from its spec),
//! then follow the new pods through a watch until they are fixed, fail again or `--timeout`
//! passes. `unloop diagnose --watch` is the same follow without the delete.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use unloop_core::diagnose::{Query, Target};
use unloop_core::follow::{Follow, Goal, Verdict};
use unloop_core::shell::{Cmd, render};
use unloop_core::workload::{self, Workload, WorkloadKind};
use unloop_core::{ClusterState, jobs, status};
use unloop_source::debug::{self as ops, Deleted};
use unloop_source::live::watch::{PodWatch, watch_pods};
use unloop_source::live::{self, Live, LiveOptions};

use crate::cli::{Global, OutputFormat, RetryArgs};
use crate::error::{CliError, ErrorKind};
use crate::output::{Output, field};

pub fn run(args: RetryArgs, global: &Global, out: &Output) -> Result<ExitCode, CliError> {
    let target = super::diagnose::parse_target(&args.target)?;
    // Refuse before reading anything: nobody could answer the question.
    if !args.yes && !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "refusing to restart pods without confirmation (stdin is not a terminal)",
            Some("pass --yes to confirm"),
        ));
    }
    let mut opts = super::live_options(global, &args.scope, args.tail);
    opts.timeout = global.follow_timeout();
    super::runtime()?.block_on(async {
        let live = live::connect(&opts).await?;
        let ns = args
            .scope
            .namespace
            .clone()
            .unwrap_or_else(|| live.default_namespace.clone());
        opts.namespace = Some(ns.clone());
        let started = tokio::time::Instant::now();
        let now = Timestamp::now();
        let state = live.read(&opts, now, &|what| out.progress(what)).await?;
        out.progress_done();
        let (w, selector) = workload_of(&state, &ns, &target, true)?;
        if w.kind == WorkloadKind::Job {
            let job = state
                .jobs
                .iter()
                .find(|j| same(&j.metadata, &ns, &w.name))
                .ok_or_else(|| not_found(&w.to_string(), &ns))?;
            return rerun_job(
                &live, &opts, &state, job, &w, &ns, &selector, &args, started, out,
            )
            .await;
        }
        let doomed: Vec<&Pod> = match &target {
            Target::Pod(name) => state
                .pods
                .iter()
                .filter(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                .collect(),
            Target::Workload(..) => state
                .pods
                .iter()
                .filter(|p| belongs(&state, p, &w) && in_trouble(p, now))
                .collect(),
        };
        if doomed.is_empty() {
            out.human(&format!(
                "nothing to retry: no pod of {w} in namespace {ns} is in trouble\n"
            ));
            return Ok(ExitCode::SUCCESS);
        }
        let mut plan = format!(
            "{w} in namespace {ns}: {} restarted now instead of after the backoff (its controller re-creates {}):\n",
            plural(doomed.len(), "pod"),
            if doomed.len() == 1 { "it" } else { "them" }
        );
        for p in &doomed {
            plan.push_str(&plan_line(p));
        }
        plan.push_str("the same by hand:\n");
        for p in &doomed {
            let cmd = Cmd::kubectl(&["delete", "pod"])
                .operand(p.metadata.name.as_deref().unwrap_or_default())
                .flag_value("-n", ns.as_str());
            plan.push_str(&format!("  {}\n", render(&cmd.into())));
        }
        out.note(plan.trim_end());
        if !args.yes {
            super::confirm(&format!("Delete {}?", plural(doomed.len(), "pod")))?;
        }
        // Watch first, so no change between the delete and the watch is missed.
        let mut watch = watch_pods(&opts, &ns, &selector).await?;
        let pods = first_list(&mut watch).await?;
        let mut deleted = Vec::new();
        for p in &doomed {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            let uid = p.metadata.uid.as_deref().unwrap_or_default();
            if ops::delete_pod(&live, &ns, name, uid).await? == Deleted::AlreadyGone {
                out.note(&format!(
                    "pod {name} was already gone (or replaced under its name); left alone"
                ));
            }
            deleted.push(uid.to_string());
        }
        let follow = Follow::new(Goal::of(w.kind), args.settle, &pods, &deleted);
        let ended = follow_until(&mut watch, follow, started + opts.timeout, out).await;
        conclude(
            ended,
            &live,
            &opts,
            &w,
            &ns,
            &deleted,
            args.settle,
            args.output,
            started,
            out,
        )
        .await
    })
}

/// `unloop diagnose TARGET --watch`: the same follow, restarting nothing.
pub fn watch(
    target: &Target,
    global: &Global,
    mut opts: LiveOptions,
    settle: i64,
    format: OutputFormat,
    out: &Output,
) -> Result<ExitCode, CliError> {
    opts.timeout = global.follow_timeout();
    super::runtime()?.block_on(async {
        let live = live::connect(&opts).await?;
        let ns = opts
            .namespace
            .clone()
            .unwrap_or_else(|| live.default_namespace.clone());
        opts.namespace = Some(ns.clone());
        let started = tokio::time::Instant::now();
        let state = live
            .read(&opts, Timestamp::now(), &|what| out.progress(what))
            .await?;
        out.progress_done();
        let (w, selector) = workload_of(&state, &ns, target, false)?;
        let mut watch = watch_pods(&opts, &ns, &selector).await?;
        let pods = first_list(&mut watch).await?;
        let follow = Follow::new(Goal::of(w.kind), settle, &pods, &[]);
        let ended = follow_until(&mut watch, follow, started + opts.timeout, out).await;
        conclude(
            ended,
            &live,
            &opts,
            &w,
            &ns,
            &[],
            settle,
            format,
            started,
            out,
        )
        .await
    })
}

/// Re-runs a Job (`retry job/NAME`): shows the plan, deletes the Job as read (by uid; its pods go
/// with it) and creates it again from its spec (`jobs::rerun`, what the remedy's pipeline does by
/// hand), then follows the new Job's pods: one completes (fixed), one fails (the new diagnosis).
#[allow(clippy::too_many_arguments)]
async fn rerun_job(
    live: &Live,
    opts: &LiveOptions,
    state: &ClusterState,
    job: &Job,
    w: &Workload,
    ns: &str,
    selector: &str,
    args: &RetryArgs,
    started: tokio::time::Instant,
    out: &Output,
) -> Result<ExitCode, CliError> {
    let now = Timestamp::now();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let pods: Vec<&Pod> = state
        .pods
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid)
        })
        .collect();
    let condition = |t: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
    };
    if !condition("Failed") && !pods.iter().any(|p| in_trouble(p, now)) {
        out.human(&format!(
            "nothing to retry: {w} in namespace {ns} {}\n",
            if condition("Complete") {
                "completed"
            } else {
                "has not failed and none of its pods is in trouble"
            }
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let mut plan = format!(
        "{w} in namespace {ns}: re-created from its spec now (a failed Job does not run again by itself); the old Job is deleted, {} with it{}\n",
        match pods.len() {
            0 => "no pod left".to_string(),
            1 => "its pod".to_string(),
            n => format!("its {n} pods"),
        },
        if pods.is_empty() { "" } else { ":" }
    );
    for p in &pods {
        plan.push_str(&plan_line(p));
    }
    plan.push_str("the same by hand:\n");
    plan.push_str(&format!("  {}\n", render(&jobs::rerun_script(&w.name, ns))));
    out.note(plan.trim_end());
    if !args.yes {
        super::confirm(&format!("Re-create {w}?"))?;
    }
    // The Job as the API server has it (the state's copy is redacted), and only the one shown.
    let fresh = ops::get_job(live, ns, &w.name).await?;
    if fresh.metadata.uid.as_deref() != Some(uid.as_str()) {
        return Err(CliError::usage(
            format!(
                "{w} in namespace {ns} was re-created since unloop read it; nothing was changed"
            ),
            Some("run unloop retry again to see what it would do now"),
        ));
    }
    // Watch first (the Job's name label, which the new Job's pods carry too), so nothing between
    // the delete and the watch is missed; every pod listed now is the old Job's.
    let mut watch = watch_pods(opts, ns, selector).await?;
    let old_pods = first_list(&mut watch).await?;
    let old: Vec<String> = old_pods
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    ops::rerun_job(live, ns, &fresh, &jobs::rerun(&fresh)).await?;
    let follow = Follow::new(Goal::Complete, args.settle, &old_pods, &old).expecting(1);
    let ended = follow_until(&mut watch, follow, started + opts.timeout, out).await;
    conclude(
        ended,
        live,
        opts,
        w,
        ns,
        &old,
        args.settle,
        args.output,
        started,
        out,
    )
    .await
}

fn same(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: &str,
    name: &str,
) -> bool {
    m.namespace.as_deref() == Some(ns) && m.name.as_deref() == Some(name)
}

/// The workload a target names, with the label selector of its pods. A pod of a Job stands for
/// its Job (the pod is what a Job re-run replaces). `retrying` refuses what `retry` cannot
/// restart; a follow (`--watch`) takes any workload whose pods it can select.
fn workload_of(
    state: &ClusterState,
    ns: &str,
    target: &Target,
    retrying: bool,
) -> Result<(Workload, String), CliError> {
    let w = match target {
        Target::Pod(name) => {
            let pod = state
                .pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| not_found(&format!("pod {name}"), ns))?;
            let job = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.kind == "Job" && r.controller == Some(true));
            match job {
                Some(j) => Workload {
                    kind: WorkloadKind::Job,
                    name: j.name.clone(),
                },
                None => workload::of_pod(state, pod),
            }
        }
        Target::Workload(kind, name) => Workload {
            kind: *kind,
            name: name.clone(),
        },
    };
    match w.kind {
        WorkloadKind::Pod => {
            return Err(CliError::usage(
                format!(
                    "pod {} has no controller: deleted, it would be gone for good",
                    w.name
                ),
                Some(
                    "re-create it from its manifest (unloop diagnose shows how), then unloop diagnose --watch",
                ),
            ));
        }
        WorkloadKind::CronJob => {
            return Err(cron_refusal(
                &format!("{w} runs on its schedule"),
                &w.name,
                ns,
            ));
        }
        WorkloadKind::Job => {
            let job = state
                .jobs
                .iter()
                .find(|j| same(&j.metadata, ns, &w.name))
                .ok_or_else(|| not_found(&w.to_string(), ns))?;
            // A CronJob's Job re-created as it was would run the old jobTemplate: a fix made in
            // the CronJob (where it belongs) would not be in it, and the CronJob would not know
            // the Job. A Job from the CronJob's current template is the retry.
            if retrying && let Some(cron) = jobs::cronjob_of(job) {
                return Err(cron_refusal(
                    &format!(
                        "{w} was made by cronjob/{cron}: re-created, it would run the CronJob's old template, not a fix made since"
                    ),
                    cron,
                    ns,
                ));
            }
        }
        _ => {}
    }
    let selector = unloop_core::follow::pod_selector(state, ns, w.kind, &w.name)
        .ok_or_else(|| not_found(&w.to_string(), ns))?;
    Ok((w, selector))
}

/// A CronJob is retried by a Job made from its current template (the remedy's command), then
/// followed.
fn cron_refusal(message: &str, cron: &str, ns: &str) -> CliError {
    let create = render(&jobs::from_cronjob(cron, ns).into());
    let watch = render(
        &Cmd::new("unloop", &["diagnose"])
            .operand(format!("job/{cron}-retry"))
            .flag_value("-n", ns)
            .flag("--watch")
            .into(),
    );
    CliError::usage(
        message.to_string(),
        Some(&format!(
            "run it now from its current template: {create}, then {watch}"
        )),
    )
}

fn not_found(what: &str, ns: &str) -> CliError {
    CliError::usage(
        format!("no {what} found in namespace {ns}"),
        Some("check the name and the namespace (-n NS)"),
    )
}

fn belongs(state: &ClusterState, p: &Pod, w: &Workload) -> bool {
    let of = workload::of_pod(state, p);
    (of.kind == w.kind && of.name == w.name)
        || (w.kind == WorkloadKind::ReplicaSet
            && p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.kind == "ReplicaSet" && r.name == w.name))
}

/// What a retry restarts: a pod whose containers are in trouble or that failed as a whole.
fn in_trouble(p: &Pod, now: Timestamp) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && (!status::troubled_containers(p, now).is_empty() || status::pod_failure(p).is_some())
}

/// A pod in a plan: "  NAME  STATUS, N restarts".
fn plan_line(p: &Pod) -> String {
    format!(
        "  {}  {}, {}\n",
        field(p.metadata.name.as_deref().unwrap_or_default()),
        field(status::pod_status(p)),
        plural(status::restarts(p) as usize, "restart")
    )
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

async fn first_list(watch: &mut PodWatch) -> Result<Vec<Pod>, CliError> {
    match watch.changed().await {
        Some(Ok(pods)) => Ok(pods),
        Some(Err(why)) => Err(CliError {
            kind: ErrorKind::Cluster,
            message: format!("cannot watch the pods: {why}"),
            hint: Some("watching pods needs RBAC permission to list and watch pods".into()),
        }),
        None => Err(CliError::internal(
            "the pod watch ended before its first list",
        )),
    }
}

/// How a follow ended.
enum Ended {
    Fixed,
    FailedAgain(Vec<String>),
    /// The deadline passed; the last status line.
    TimedOut(String),
}

/// Follows the pods the watch delivers until fixed, failed again or `deadline`: the status line
/// redrawn each second on a terminal (the countdowns move), a plain line per change otherwise.
/// The clock ticks without asking the API anything.
async fn follow_until(
    watch: &mut PodWatch,
    mut follow: Follow,
    deadline: tokio::time::Instant,
    out: &Output,
) -> Ended {
    let mut pods = watch.pods();
    let mut last = String::new();
    let mut warned = false;
    loop {
        match follow.step(&pods, Timestamp::now()) {
            Verdict::Fixed => return Ended::Fixed,
            Verdict::FailedAgain(names) => return Ended::FailedAgain(names),
            Verdict::Following(progress) => {
                out.live(&progress.line(true), &progress.line(false), &mut last)
            }
        }
        tokio::select! {
            changed = watch.changed() => match changed {
                Some(Ok(now)) => pods = now,
                Some(Err(why)) if !warned => {
                    warned = true;
                    out.live_done();
                    out.note(&format!("the pod watch broke ({why}); it is restarted with backoff"));
                }
                Some(Err(_)) => {}
                None => return Ended::TimedOut(last),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::time::sleep_until(deadline) => {
                out.live_done();
                return Ended::TimedOut(last);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn conclude(
    ended: Ended,
    live: &Live,
    opts: &LiveOptions,
    w: &Workload,
    ns: &str,
    deleted: &[String],
    settle: i64,
    format: OutputFormat,
    started: tokio::time::Instant,
    out: &Output,
) -> Result<ExitCode, CliError> {
    out.live_done();
    let took = unloop_core::duration::human_whole(started.elapsed().as_secs());
    match ended {
        Ended::Fixed if Goal::of(w.kind) == Goal::Complete => {
            out.human(&format!(
                "fixed: a new pod of {w} in namespace {ns} completed ({took} in all)\n"
            ));
            Ok(ExitCode::SUCCESS)
        }
        Ended::Fixed => {
            out.human(&format!(
                "fixed: every pod of {w} in namespace {ns} is Ready and stayed so for {} ({took} in all)\n",
                unloop_core::duration::human_whole(settle.max(0) as u64)
            ));
            Ok(ExitCode::SUCCESS)
        }
        Ended::FailedAgain(pods) => {
            out.note(&format!(
                "failed again after {took}: {}; its diagnosis:",
                pods.join(", ")
            ));
            let now = Timestamp::now();
            let mut state = live.read(opts, now, &|what| out.progress(what)).await?;
            out.progress_done();
            // The pods retry deleted may still be terminating: their runs are the ones before the
            // fix. The diagnosis is of the pods that came after.
            let is_gone = |p: &Pod| p.metadata.uid.as_ref().is_some_and(|u| deleted.contains(u));
            let gone: Vec<String> = state
                .pods
                .iter()
                .filter(|p| is_gone(p))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            state.pods.retain(|p| !is_gone(p));
            // A StatefulSet's new pod has the old one's name: its log gaps stay.
            let kept = |name: &String| {
                state
                    .pods
                    .iter()
                    .any(|p| p.metadata.name.as_ref() == Some(name))
            };
            let stale: Vec<String> = gone.into_iter().filter(|n| !kept(n)).collect();
            state.gaps.retain(|g| {
                !matches!(&g.about, unloop_core::gap::GapAbout::Log { pod, .. } if stale.contains(pod))
            });
            let query = Query {
                namespaces: vec![ns.to_string()],
                target: Some(Target::Workload(w.kind, w.name.clone())),
                ..Query::default()
            };
            let report = unloop_core::diagnose(&state, &query, now);
            out.result(&unloop_report::render(
                &report,
                super::diagnose::format(format),
                out.color,
            ));
            Ok(ExitCode::from(1))
        }
        Ended::TimedOut(last) => Err(CliError {
            kind: ErrorKind::NotSettled,
            message: format!(
                "{w} neither fixed nor failed again within {took}{}",
                if last.is_empty() {
                    String::new()
                } else {
                    format!(" (last: {last})")
                }
            ),
            hint: Some(
                "a longer --timeout follows it further; unloop diagnose shows where it stands"
                    .into(),
            ),
        }),
    }
}
