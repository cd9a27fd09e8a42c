#!/usr/bin/env bash
# Revision 1 (app:1.0) until available, then revision 2 (app:2.0) the way a CI pipeline ships it.
source "$(dirname "$0")/../../lib/common.sh"
ns=bad-rollout
kubectl apply -f "$(dirname "$0")/manifest.yaml"
kubectl -n $ns rollout status deploy/api --timeout=120s
kubectl -n $ns set image deploy/api api=unloop.test/app:2.0
kubectl -n $ns annotate deploy/api kubernetes.io/change-cause="release 2.0 (pipeline #4812)" --overwrite
