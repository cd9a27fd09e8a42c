//! What a container's exit code means, in the context of its reason and restart policy.

/// The signal number behind an exit code of 128+N, if it is one.
pub fn signal_of(code: i32) -> Option<i32> {
    // Lazily: `code - 128` overflows for codes near i32::MIN, which a bundle may hold.
    (129..=159).contains(&code).then(|| code - 128)
}

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// A one-line meaning of an exit code. `reason` is the terminated state's reason (OOMKilled, Error,
/// Completed, StartError, ...); `long_running` is true under restartPolicy Always, where any exit is
/// unexpected.
pub fn meaning(code: i32, reason: Option<&str>, long_running: bool) -> String {
    if reason == Some("OOMKilled") {
        return if code == 137 {
            "killed by the kernel's OOM killer for exceeding its memory limit (SIGKILL)".into()
        } else {
            format!(
                "a process in the container was OOM-killed (cgroup v1 can kill a child while PID 1 survives, so the exit code is {code}, not 137)"
            )
        };
    }
    if reason == Some("StartError") || (code == 128 && reason != Some("Error")) {
        return "the runtime could not start the entrypoint (missing binary, wrong architecture or bad permissions)".into();
    }
    if reason == Some("ContainerStatusUnknown") {
        return "the kubelet lost track of the container (the node restarted or the container vanished)".into();
    }
    match code {
        0 if long_running => {
            "exited successfully, but this workload must keep running: its entrypoint finished (a wrong command, or a process that daemonized itself)".into()
        }
        0 => "exited successfully".into(),
        1 => "the application exited with a general error".into(),
        2 => "the application exited with a usage or startup error (Go panics also exit 2)".into(),
        126 => "a command was found but is not executable (permission or format)".into(),
        127 => "a command was not found (the shell could not find it in PATH)".into(),
        137 => "killed with SIGKILL: an OOM kill by the node, or a kill after the termination grace period (for example after a failed liveness probe)".into(),
        139 => "segmentation fault (SIGSEGV): the program read or wrote memory it does not own".into(),
        134 => "aborted (SIGABRT): the program called abort(), often an assertion or a runtime's fatal error".into(),
        143 => "terminated with SIGTERM: something asked it to stop (a liveness-probe restart or a shutdown)".into(),
        130 => "interrupted (SIGINT)".into(),
        255 => "exited with -1 or an unknown status (also what the runtime reports after it restarts)".into(),
        c => match signal_of(c) {
            Some(s) => format!("killed by signal {s} ({})", signal_name(s)),
            None => format!("the application exited with code {c}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_a_problem_only_for_long_running_workloads() {
        assert!(meaning(0, Some("Completed"), true).contains("entrypoint finished"));
        assert_eq!(meaning(0, Some("Completed"), false), "exited successfully");
    }

    #[test]
    fn oom_with_a_non_137_code_names_cgroup_v1() {
        assert!(meaning(1, Some("OOMKilled"), true).contains("cgroup v1"));
        assert!(
            meaning(137, Some("OOMKilled"), true).starts_with("killed by the kernel's OOM killer")
        );
    }

    #[test]
    fn signals_are_decoded() {
        assert_eq!(signal_of(139), Some(11));
        assert_eq!(signal_of(1), None);
        assert!(meaning(136, Some("Error"), true).contains("SIGFPE"));
        assert!(meaning(128, Some("StartError"), true).contains("could not start"));
    }
}
