#!/usr/bin/env bash
# CI smoke run of the fuzz targets in fuzz/: builds them, seeds fresh corpora (fuzz/seed.sh) and runs
# every target for a fixed number of inputs, about a minute's worth each on this project's 2-core
# machines. Fails if any target finds a crash, a hang (an input that takes more than 10 s) or an
# input that needs more than 2 GiB.
#
# Reproducible on purpose: a fixed seed, a fixed number of runs and a fresh corpus seeded from the
# repo make every machine repeat the same search, so the smoke run guards against regressions and
# passes or fails the same way everywhere (a slow machine that reaches the time cap first has run a
# prefix of the same search). Finding new inputs is the long runs' job (fuzz/README.md).
#
# Needs only crates.io: cargo-fuzz is installed with `cargo install` when missing. libFuzzer needs a
# nightly compiler's unstable flags: a nightly toolchain is used when rustup has one or can install
# one; otherwise the stable toolchain with RUSTC_BOOTSTRAP=1 (the targets are built without a
# sanitizer either way: the code forbids `unsafe`, so ASan would find nothing the panics do not).
#
# Env: FUZZ_SMOKE_SECS (time cap per target, default 120), FUZZ_SMOKE_RUNS_SCALE (multiplies
#      the runs below; 0 = time-bound only), FUZZ_SMOKE_SEED (libFuzzer's -seed, default 1), FUZZ_SMOKE_TARGETS (space-separated subset),
#      FUZZ_SMOKE_PARALLEL (targets run at once; default: the number of cores),
#      FUZZ_TARGET_DIR (cargo target dir for the fuzz build; default fuzz/target),
#      FUZZ_SMOKE_CLEAN=1 (remove that target dir afterwards: a few GB nothing later reads; CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
secs=${FUZZ_SMOKE_SECS:-120}
scale=${FUZZ_SMOKE_RUNS_SCALE:-1}
parallel=${FUZZ_SMOKE_PARALLEL:-$(nproc)}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$repo/fuzz/target}
say() { printf '[fuzz-smoke] %s\n' "$*" >&2; }
t0=$(date +%s)

export PATH="$PATH:$HOME/.cargo/bin"
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
elif timeout 300 rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  say "no nightly toolchain (rustup cannot install one): stable with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
fi

cd fuzz
say "building the fuzz targets with $(rustc "${toolchain[@]}" --version)"
cargo "${toolchain[@]}" fuzz build --sanitizer none --codegen-units 16
bindir=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
corpus=$(mktemp -d)
FUZZ_CORPUS=$corpus ./seed.sh >/dev/null

# Inputs per target: what each ran in about 60 s on this project's CI machine (2 cores, 2 targets
# at once).
declare -A runs=(
  [audit_load]=120000 [audit_shell]=50000 [bundle]=20000 [diagnose]=14000 [dump_dir]=30000
  [duration]=8000000 [kubectl_json]=50000 [logscan]=80000 [metrics]=8000000 [quantity]=4000000
  [redact]=200000 [selector]=1400000
)

targets=${FUZZ_SMOKE_TARGETS:-$(cargo "${toolchain[@]}" fuzz list)}
logs=$(mktemp -d)
mkdir -p artifacts
run_one() {
  local t=$1
  mkdir -p "artifacts/$t"
  local n=$(( ${runs[$t]:-100000} * scale )); [ "$n" -gt 0 ] || n=-1
  if nice -n 10 "$bindir/$t" "$corpus/$t" -seed="${FUZZ_SMOKE_SEED:-1}" -runs="$n" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$logs/$t.log" 2>&1; then
    say "$t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$') runs)"
  else
    say "$t: FAILED; the input is under fuzz/artifacts/$t/, the log ends:"
    { grep -m1 -A3 'panicked at' "$logs/$t.log"; grep -E '^(==|SUMMARY|artifact_prefix)' "$logs/$t.log"; } >&2
    return 1
  fi
}
failed=()
running=()
for t in $targets; do
  run_one "$t" & running+=("$!:$t")
  if [ "${#running[@]}" -ge "$parallel" ]; then
    entry=${running[0]}; running=("${running[@]:1}")
    wait "${entry%%:*}" || failed+=("${entry#*:}")
  fi
done
for entry in "${running[@]}"; do
  wait "${entry%%:*}" || failed+=("${entry#*:}")
done
rm -rf "$logs" "$corpus"
if [ "${FUZZ_SMOKE_CLEAN:-0}" = 1 ]; then rm -rf "$CARGO_TARGET_DIR"; fi

say "done in $(( $(date +%s) - t0 ))s"
if [ "${#failed[@]}" -ne 0 ]; then
  say "crashes in: ${failed[*]} (reproduce: cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/FILE)"
  exit 1
fi
