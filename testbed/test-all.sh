#!/usr/bin/env bash
# The one command that runs every test of unloop, the real-cluster ones included:
#   lints, unit and snapshot tests, the krew manifest (testbed/krew-validate.sh), the agent's chart
#   (testbed/chart-validate.sh), a short run of every fuzz target (testbed/fuzz-smoke.sh), the HTML
#   report in Chromium (testbed/browser.sh), then the testbed cluster with every crash scenario
#   running for real, unloop mcp under a real MCP client (testbed/mcp.sh), the end-to-end suite against
#   it, a short crash-loop backoff cap on the real kubelet (testbed/backoff-cap.sh), real node
#   pressure with an eviction (testbed/pressure.sh), and a check that no packet left the machine
#   meanwhile.
# Needs root (the testbed runs a kubelet). Leaves the cluster up unless TESTBED_DOWN=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib/common.sh
need_root

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
t0=$(date +%s)

# TEST_ALL_FROM=testbed starts at the testbed (the lints, unit tests, krew and fuzz steps passed
# already on this tree): for re-running the live part after a testbed problem. CI never sets it.
if [ "${TEST_ALL_FROM:-}" != testbed ]; then
step "lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --features unloop/e2e --locked -- -D warnings
# No unused dependencies: cargo-machete looks for each dependency's name in its crate's sources
# (seconds; no network once installed, from crates.io when missing). --with-metadata resolves
# `workspace = true` entries, which it misses otherwise (an unused insta went unseen).
command -v cargo-machete >/dev/null || cargo install --locked cargo-machete@0.9.2
cargo machete --with-metadata

step "unit, snapshot and bundle tests"
# The one test that needs the network (npm, for the official SARIF schema) is opt-in.
UNLOOP_FETCH_SARIF_SCHEMA=1 cargo test --workspace --locked

step "krew manifest: krew's validator, and an offline install of the local archive"
UNLOOP_DIST_BIN=${CARGO_TARGET_DIR:-target}/debug/kubectl-unloop testbed/krew-validate.sh

step "agent chart: helm lint, deploy/agent.yaml is the chart rendered, unloop audit on both"
# Helm is built once from the Go module proxy into the cache (a few minutes the first time), then ~5 s.
UNLOOP_BIN=${CARGO_TARGET_DIR:-target}/debug/unloop testbed/chart-validate.sh

step "fuzz smoke: every fuzz target, a fixed search of about 60 s each"
testbed/fuzz-smoke.sh

step "the HTML report in headless Chromium (Debian's, installed when missing)"
testbed/browser.sh
fi

step "testbed: build, start, apply the scenarios"
testbed/build.sh
testbed/up.sh
export KUBECONFIG=$KUBECONFIG_ADMIN
export KUBECTL=$BIN/kubectl

# The egress guard's proof: capture on eth0 anything from or to the pod and service ranges while
# every scenario runs. It must stay empty.
egress_if=$(ip route show default | awk '{print $5; exit}')
capture=$(mktemp)
tcpdump -ni "$egress_if" -w "$capture" "net $POD_CIDR or net $SERVICE_CIDR" 2>/dev/null &
tcpdump_pid=$!
trap 'kill $tcpdump_pid 2>/dev/null || true; [ "${TESTBED_DOWN:-0}" = 1 ] && testbed/down.sh || true' EXIT

testbed/scenarios.sh apply
testbed/scenarios.sh wait

step "unloop mcp under a real MCP client (the official Python SDK), on a bundle and live"
# Before the e2e suite: its debug tests change the scenario namespaces this reads.
testbed/mcp.sh --live

step "end-to-end against the live testbed"
# One at a time: the debug tests change scenario namespaces that the others read. Includes
# `unloop retry` and `diagnose --watch` on crash loops of its own namespace (retry-e2e, about 90 s),
# a failed Job re-created (retry-job-e2e, about 30 s) and a follow timing out under a pty and a pipe
# (watch-tty-e2e, about 25 s).
cargo test -p unloop --features e2e --test e2e --locked -- --test-threads=1
# unloop agent in the cluster (about 3 min): the binary under test in an image
# (testbed/images.sh unloop), installed by the Helm chart with two replicas on a Lease; a
# CrashDiagnosis and an Event with the right cause for each crash loop, none for healthy, one
# webhook notification each (receiver on the node address); the leader's pod deleted, no
# duplicate; the apiserver restarted (testbed/restart-apiserver.sh, left running), a new crash
# loop still diagnosed; a fix resolves, a delete garbage-collects.
cargo test -p unloop --features e2e --test e2e_agent --locked -- --test-threads=1

step "a short crash-loop backoff cap on the real kubelet"
# testbed/backoff-cap.sh restarts the kubelet with crashLoopBackOff.maxContainerRestartPeriod 4s
# (containers keep running), a pod of its own namespace crash-loops, and the test checks that the
# kubelet restarts it every 4 s and that diagnose reads the cap from configz and predicts the next
# restart; the kubelet's own configuration is restored whatever happens. About 60 s.
cargo test -p unloop --features e2e --test backoff_cap --locked

step "node pressure and eviction (disturbs the whole node: last)"
# The e2e tests are done with the crash scenarios: remove them first. Under memory pressure the
# kubelet evicts pods it has no usage figures for before any other, and crash-looping pods rarely
# have them: with every scenario on the node, it evicts them one per cycle and the pressure
# scenario's pod comes too late.
testbed/scenarios.sh delete
cargo test -p unloop --features e2e --test pressure --locked

step "egress check"
sleep 1
kill "$tcpdump_pid" 2>/dev/null || true
wait "$tcpdump_pid" 2>/dev/null || true
leaked=$(tcpdump -nr "$capture" 2>/dev/null | wc -l)
if [ "$leaked" -ne 0 ]; then
  tcpdump -nr "$capture" 2>/dev/null | head -20 >&2
  die "$leaked packets from the pod or service ranges went out on $egress_if"
fi
echo "no packet from $POD_CIDR or $SERVICE_CIDR left through $egress_if"
rm -f "$capture"

step "all tests passed in $(( $(date +%s) - t0 ))s"
