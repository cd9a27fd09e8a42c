#!/usr/bin/env bash
# Captures what the testbed's own kubectl writes, for the tests of unloop's offline inputs
# (crates/unloop-source/tests/data/): a `kubectl cluster-info dump` of two scenarios (a crashed
# container with its log; two pods whose logs kubectl could not read) and `kubectl get pods -o json`
# of one. The scenarios must be applied and waited for first (scenarios.sh).
source "$(dirname "$0")/lib/common.sh"
need_root
export KUBECONFIG=$KUBECONFIG_ADMIN PATH=$BIN:$PATH
DATA=$REPO_DIR/crates/unloop-source/tests/data
rm -rf "$DATA/cluster-info-dump"
mkdir -p "$DATA"
kubectl cluster-info dump --namespaces missing-env-var,shared-missing-secret \
  --output-directory "$DATA/cluster-info-dump" >/dev/null
kubectl get pods -n missing-env-var -o json >"$DATA/get-pods.json"
log "captured $(find "$DATA/cluster-info-dump" -type f | wc -l) dump files and get-pods.json into $DATA"
