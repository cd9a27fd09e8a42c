#!/usr/bin/env bash
# Builds the linux-amd64 krew archive from a local build and a manifest that points at it:
#   deploy/krew/package.sh [OUT_DIR]      (default: $CARGO_TARGET_DIR or target, then /krew)
# OUT_DIR gets kubectl-unloop-linux-amd64.tar.gz (kubectl-unloop and LICENSE inside) and
# unloop.yaml: deploy/krew/unloop.yaml with that archive's sha256 in its linux-amd64 entry.
# The binary is built with the dist profile (Cargo.toml), niced: a fat-LTO build takes minutes.
# Set UNLOOP_DIST_BIN to package an already-built binary instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
out=${1:-$target/krew}
mkdir -p "$out"

bin=${UNLOOP_DIST_BIN:-}
if [ -z "$bin" ]; then
  nice cargo build --locked --profile dist -p unloop --bin kubectl-unloop
  bin=$target/dist/kubectl-unloop
fi
[ -x "$bin" ] || { echo "package.sh: no binary at $bin" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$bin" "$stage/kubectl-unloop"
# krew's index wants a license file in every archive.
license=$(sed -n 's/^license = "\(.*\)"/\1/p' Cargo.toml)
printf 'unloop is licensed under %s: https://spdx.org/licenses/%s.html\n' "$license" "$license" > "$stage/LICENSE"
archive=$out/kubectl-unloop-linux-amd64.tar.gz
# Reproducible: fixed owner, order and times, no gzip timestamp.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -cf - kubectl-unloop LICENSE \
  | gzip -n -9 > "$archive"
sha=$(sha256sum "$archive" | cut -d' ' -f1)

# The sha256 line that follows the linux-amd64 uri.
awk -v sha="$sha" '
  /uri: .*kubectl-unloop-linux-amd64\.tar\.gz/ { hit = 1; print; next }
  hit && /sha256:/ { sub(/sha256: .*/, "sha256: \"" sha "\""); hit = 0 }
  { print }
' deploy/krew/unloop.yaml > "$out/unloop.yaml"
grep -q "$sha" "$out/unloop.yaml" || { echo "package.sh: linux-amd64 entry not found in the manifest" >&2; exit 1; }
echo "$archive  sha256 $sha  ($(stat -c %s "$archive") bytes)"
echo "$out/unloop.yaml"
