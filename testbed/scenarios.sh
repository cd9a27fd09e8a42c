#!/usr/bin/env bash
# The crash scenarios, one directory each under testbed/scenarios/NAME (namespace NAME):
# manifest.yaml, expect.yaml (what `kubectl get pods` must show, and what unloop must conclude), and for
# multi-step scenarios an executable steps.sh that is run instead of a plain apply.
#
#   scenarios.sh list [NAME...]     the scenarios and what each expects
#   scenarios.sh apply [NAME...]    apply (all by default); steps.sh scenarios are re-created from scratch
#   scenarios.sh wait [NAME...]     wait, in parallel and bounded, until each shows its expected state
#   scenarios.sh status [NAME...]   the pods of each scenario now
#   scenarios.sh delete [NAME...]   delete the scenarios' namespaces
#
# expect.yaml fields read here: `state` (an extended regex for the STATUS column, e.g.
# `CrashLoopBackOff` or `ErrImagePull|ImagePullBackOff`), `min_restarts` (RESTARTS at least this),
# `ready: true` (every pod Ready), `last_state` ({container, reason, exit_code} of the last termination,
# checked once the state is reached), `min_age` (seconds: the pod is at least this old, for states that
# only count after a grace or settle period), `state: none` (no pod is left: steps.sh removed them).
# The timeout per scenario is $SCENARIO_TIMEOUT seconds (300).
source "$(dirname "$0")/lib/common.sh"

SCENARIOS_DIR=$TESTBED_DIR/scenarios
TIMEOUT=${SCENARIO_TIMEOUT:-300}

all_names() { find "$SCENARIOS_DIR" -mindepth 2 -maxdepth 2 -name expect.yaml -printf '%h\n' | xargs -n1 basename | sort; }

names() {
  if [ $# -eq 0 ]; then
    all_names
    return
  fi
  local n
  for n in "$@"; do
    [ -f "$SCENARIOS_DIR/$n/expect.yaml" ] || die "no scenario named $n (see: scenarios.sh list)"
    echo "$n"
  done
}

# field NAME KEY: a top-level scalar from NAME's expect.yaml.
field() { sed -n "s/^$2: *//p" "$SCENARIOS_DIR/$1/expect.yaml" | head -1 | sed 's/ *#.*//; s/^"\(.*\)"$/\1/'; }
# last_state NAME KEY: a key of the inline last_state map.
last_state() { sed -n 's/^last_state: *{\(.*\)}.*/\1/p' "$SCENARIOS_DIR/$1/expect.yaml" | tr ',' '\n' | sed -n "s/^ *$2: *//p"; }

cmd_list() {
  local n
  printf '%-24s %-32s %-26s %s\n' SCENARIO STATE CAUSE TARGET
  for n in $(names "$@"); do
    printf '%-24s %-32s %-26s %s\n' "$n" "$(field "$n" state)" "$(field "$n" cause)" "$(field "$n" target)"
  done
}

cmd_apply() {
  local n pids=() failed=0
  local list
  list=$(names "$@")
  mkdir -p "$STATE/scenarios"
  # Multi-step scenarios start from scratch: their steps are a history, not a desired state.
  local fresh=()
  for n in $list; do [ -x "$SCENARIOS_DIR/$n/steps.sh" ] && fresh+=("$n"); done
  if [ ${#fresh[@]} -gt 0 ]; then
    kubectl delete namespace "${fresh[@]}" --ignore-not-found --wait=true --timeout=120s >/dev/null
  fi
  for n in $list; do
    if [ -x "$SCENARIOS_DIR/$n/steps.sh" ]; then
      log "applying $n (steps.sh, in the background)"
      "$SCENARIOS_DIR/$n/steps.sh" >"$STATE/scenarios/$n.steps.log" 2>&1 &
      pids+=("$!:$n")
    else
      kubectl apply -f "$SCENARIOS_DIR/$n/manifest.yaml" >"$STATE/scenarios/$n.apply.log" 2>&1 ||
        { cat "$STATE/scenarios/$n.apply.log" >&2; die "apply of $n failed"; }
      log "applied $n"
    fi
  done
  local p
  for p in "${pids[@]}"; do
    if wait "${p%%:*}"; then
      log "applied ${p#*:} (steps done)"
    else
      failed=1
      log "steps of ${p#*:} failed:"
      sed 's/^/    /' "$STATE/scenarios/${p#*:}.steps.log" >&2
    fi
  done
  [ $failed = 0 ] || die "some scenario steps failed"
}

# wait_one NAME: polls NAME's pods until one shows the expected state; prints one line; 1 on timeout.
wait_one() {
  local n=$1
  local state min ready want_reason want_code want_container min_age old
  state=$(field "$n" state)
  min=$(field "$n" min_restarts)
  min=${min:-0}
  ready=$(field "$n" ready)
  want_reason=$(last_state "$n" reason)
  want_code=$(last_state "$n" exit_code)
  want_container=$(last_state "$n" container)
  min_age=$(field "$n" min_age)
  min_age=${min_age:-0}
  local start deadline rows match=""
  start=$(date +%s)
  deadline=$((start + TIMEOUT + min_age))
  if [ "$state" = none ]; then
    while [ -n "$(kubectl -n "$n" get pods --no-headers 2>/dev/null)" ]; do
      [ "$(date +%s)" -lt "$deadline" ] || { echo "TIMEOUT $n: pods are left"; return 1; }
      sleep 3
    done
    printf 'ok  %-24s no pod left (%ss)\n' "$n" "$(($(date +%s) - start))"
    return 0
  fi
  while :; do
    rows=$(kubectl -n "$n" get pods --no-headers 2>/dev/null || true)
    if [ "$min_age" -gt 0 ]; then
      # Only pods old enough count: AGE is not exact in --no-headers, so read creationTimestamp.
      old=$(kubectl -n "$n" get pods -o json 2>/dev/null | jq -r --argjson min "$min_age" \
        '.items[] | select((now - (.metadata.creationTimestamp | fromdateiso8601)) >= $min) | .metadata.name')
      rows=$(awk 'NR==FNR { ok[$1] = 1; next } ok[$1]' <(echo "$old") <(echo "$rows"))
    fi
    # NAME READY STATUS RESTARTS ...; RESTARTS may read "3 (20s ago)".
    match=$(awk -v re="^($state)\$" -v min="$min" -v ready="$ready" '
      { split($2, r, "/"); ok = ($3 ~ re) && ($4 + 0 >= min) && (ready != "true" || r[1] == r[2]); if (ok) m = m $1 " " $3 " " $4 "\n"; else bad = 1 }
      END { if (ready == "true" && bad) exit; printf "%s", m }' <<<"$rows" | head -1)
    [ -n "$match" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      {
        echo "TIMEOUT $n: no pod reached STATUS ~ /$state/ with RESTARTS >= $min${ready:+ and ready} in ${TIMEOUT}s"
        kubectl -n "$n" get pods -o wide 2>&1 | sed 's/^/    /'
        kubectl -n "$n" describe pods 2>&1 | sed 's/^/    /'
      }
      return 1
    fi
    sleep 3
  done
  local pod status restarts
  read -r pod status restarts <<<"$match"
  local seen=""
  if [ -n "$want_reason$want_code" ]; then
    local cname=${want_container:-$(kubectl -n "$n" get pod "$pod" -o jsonpath='{.spec.containers[0].name}')}
    seen=$(kubectl -n "$n" get pod "$pod" -o json | jq -r --arg c "$cname" '
      [(.status.initContainerStatuses // [])[], (.status.containerStatuses // [])[]] | map(select(.name == $c)) | .[0]
      | (.state.terminated // .lastState.terminated // {}) | "\(.reason // "-")/\(.exitCode // "-")"')
    if [ "$seen" != "${want_reason:--}/${want_code:--}" ]; then
      echo "MISMATCH $n: $pod $status, last termination $seen, expect.yaml says ${want_reason:--}/${want_code:--}"
      return 1
    fi
  fi
  printf 'ok  %-24s %-44s %-26s restarts=%-3s %s(%ss)\n' "$n" "$pod" "$status" "$restarts" "${seen:+last=$seen }" "$(($(date +%s) - start))"
}

cmd_wait() {
  local n list tmp failed=0
  list=$(names "$@")
  tmp=$(mktemp -d)
  log "waiting for $(wc -w <<<"$list") scenarios (at most ${TIMEOUT}s each, in parallel)"
  for n in $list; do
    (wait_one "$n" >"$tmp/$n.out" 2>&1; echo $? >"$tmp/$n.rc") &
  done
  wait
  for n in $list; do
    cat "$tmp/$n.out"
    [ "$(cat "$tmp/$n.rc")" = 0 ] || failed=$((failed + 1))
  done
  rm -rf "$tmp"
  [ $failed = 0 ] || die "$failed scenario(s) did not reach their expected state"
  log "every scenario is in its expected state"
}

cmd_status() {
  local n
  for n in $(names "$@"); do
    echo "== $n (expects $(field "$n" state))"
    kubectl -n "$n" get pods -o wide 2>&1 | sed 's/^/   /'
  done
}

cmd_delete() {
  local list
  list=$(names "$@")
  # shellcheck disable=SC2086
  kubectl delete namespace $list --ignore-not-found --wait=true --timeout=180s
}

need_root
[ -f "$KUBECONFIG_ADMIN" ] || die "the testbed is not up (no $KUBECONFIG_ADMIN): run testbed/up.sh"
sub=${1:-}
[ $# -gt 0 ] && shift
case "$sub" in
  list) cmd_list "$@" ;;
  apply) cmd_apply "$@" ;;
  wait) cmd_wait "$@" ;;
  status) cmd_status "$@" ;;
  delete) cmd_delete "$@" ;;
  *) die "usage: scenarios.sh list|apply|wait|status|delete [NAME...]" ;;
esac
