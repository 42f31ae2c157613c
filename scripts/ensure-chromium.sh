#!/usr/bin/env bash
# Make sure Debian's Chromium is there for the browser tests (tests/browser); install it if not.
# Never a browser build of Playwright's own (`playwright install`): only the distribution's,
# with a small CJK font so zh-CN pages (and their screenshots) show characters, not boxes.
set -euo pipefail
browser="${REFUNDS_CHROMIUM:-/usr/bin/chromium}"
font_ok() { [ -n "$(fc-list :lang=zh 2>/dev/null)" ]; }
if [ -x "$browser" ] && font_ok; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium ($browser) or a CJK font is missing and installing them needs root:" \
    "apt-get install chromium fonts-wqy-microhei" >&2
  exit 1
fi
echo "Chromium or a CJK font is missing; installing Debian's chromium and fonts-wqy-microhei"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null
if [ ! -x "$browser" ]; then
  echo "Chromium is still missing at $browser after apt-get install chromium" >&2
  exit 1
fi
