#!/usr/bin/env bash
# unloop mcp driven by a real MCP client: the official Python SDK (`mcp` from PyPI), in a venv
# cached outside the repo (UNLOOP_CACHE, default ~/.cache/unloop; made and filled once, then
# reused offline). stdio only: the client starts `unloop mcp` as its child.
#   testbed/mcp.sh [--live]     --live also diagnoses the running testbed (KUBECONFIG set, as
#                               test-all.sh and testbed/run.sh do)
# UNLOOP_BIN: the binary (default: cargo build's).
set -euo pipefail
cd "$(dirname "$0")/.."
MCP_VERSION=2.3.0
cache=${UNLOOP_CACHE:-$HOME/.cache/unloop}
venv=$cache/mcp-venv-$MCP_VERSION
if ! "$venv/bin/python" -c "import mcp" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "mcp==$MCP_VERSION"
fi
if [ -z "${UNLOOP_BIN:-}" ]; then
  cargo build --locked -p unloop --bin unloop
  UNLOOP_BIN=${CARGO_TARGET_DIR:-target}/debug/unloop
fi
"$venv/bin/python" testbed/mcp/client.py "$(realpath "$UNLOOP_BIN")" "$PWD" "$@"
