#!/usr/bin/env bash
# Render a report.html headless in Debian's Chromium and save a PNG screenshot.
#   scripts/screenshot_report.sh runs/inpaint/report.html [out.png] [width,height]
# Needs Chromium: sudo apt-get install chromium   (Debian/Ubuntu package name)
set -euo pipefail
html=$(realpath "$1")
out=${2:-${html%.html}.png}
size=${3:-1200,2400}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
  --screenshot="$(realpath -m "$out")" "file://$html" >/dev/null 2>&1
[ -s "$out" ] || { echo "no screenshot written to $out" >&2; exit 1; }
echo "$out"
