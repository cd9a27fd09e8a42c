#!/usr/bin/env bash
# Runs the Job until it fails (BackoffLimitExceeded), then deletes its pods.
source "$(dirname "$0")/../../lib/common.sh"
ns=job-pods-gone
dir=$(dirname "$0")
kubectl apply -f "$dir/manifest.yaml"
kubectl -n $ns wait job/export --for=condition=Failed --timeout=240s
kubectl -n $ns delete pods -l batch.kubernetes.io/job-name=export --wait=true --timeout=60s
