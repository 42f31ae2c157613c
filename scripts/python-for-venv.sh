#!/usr/bin/env bash
# Print the interpreter `make install` builds the virtualenv from (the Makefile's PYTHON;
# `make install PYTHON=...` chooses another).
#
# The distribution's Python comes first when it is 3.11 or newer and can make a virtualenv.
# Distributions build CPython with profile-guided and link-time optimisation (Debian's
# /usr/bin/python3.11 is also linked statically). The python:3.11 images that deploy/Dockerfile
# runs in production are built with both optimisations too. A source build with the default
# flags (pyenv's, `python3` on PATH on our dev machines) has neither, and it loads
# libpython as a shared library. The four services spent about 15 % more CPU per refund
# on such a build than on Debian's (README, Figures). Anything else falls back to `python3`.
set -euo pipefail
usable() {
  "$1" - <<'PY' >/dev/null 2>&1
import sys
import ensurepip, venv  # noqa: F401  (Debian ships them apart: python3-venv)
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
}
# PYTHON_CANDIDATES: where to look instead (tests/unit/test_python_for_venv.py).
for candidate in ${PYTHON_CANDIDATES:-/usr/bin/python3 /usr/local/bin/python3}; do
  if [ -x "$candidate" ] && usable "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done
echo python3
