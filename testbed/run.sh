#!/usr/bin/env bash
# Runs one command against the testbed cluster: as root (again under sudo when needed), with KUBECONFIG
# set to the testbed's admin kubeconfig and the testbed's kubectl first on PATH.
#   testbed/run.sh cargo run --release -- diagnose -A
source "$(dirname "$0")/lib/common.sh"
need_root
[ $# -gt 0 ] || die "usage: testbed/run.sh COMMAND [ARG...]"
export KUBECONFIG=$KUBECONFIG_ADMIN PATH=$BIN:$PATH
exec "$@"
