#!/usr/bin/env bash
# The HTML report in a real browser: installs Debian's Chromium when it is missing (root, apt),
# then runs crates/unloop-cli/tests/browser.rs, which renders a captured bundle's report
# headless, screenshots it and reads its DOM. The screenshot stays under the target dir
# (CARGO_TARGET_DIR/tmp/html-report/report.png).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
cargo test -p unloop --features e2e --test browser --locked
