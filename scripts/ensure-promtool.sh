#!/usr/bin/env bash
# Make sure `promtool` is there for the alert-rule tests (tests/unit/test_alert_rules.py); if
# not, install Debian's prometheus package, which ships it (only the distribution's build).
set -euo pipefail
promtool="${REFUNDS_PROMTOOL:-promtool}"
if command -v "$promtool" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool ($promtool) is missing and installing it needs root:" \
    "apt-get install prometheus" >&2
  exit 1
fi
echo "promtool is missing; installing Debian's prometheus package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# Only its promtool is wanted: on a machine with systemd, the package's server is not left running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled prometheus >/dev/null 2>&1; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
if ! command -v "$promtool" >/dev/null 2>&1; then
  echo "promtool ($promtool) is still missing after apt-get install prometheus" >&2
  exit 1
fi
