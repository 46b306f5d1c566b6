#!/bin/sh
# The Debian packages `make` needs that are missing here, installed with apt
# (`stack/sysdeps.sh --list` only prints them). PYTHON (default python3) is
# the interpreter the venv is made from; VENV (default .venv) the venv.
#
# uWSGI has no wheel on PyPI (only an sdist): pip compiles it, which needs a
# C compiler and the interpreter's headers (Python.h). Debian's python3 also
# leaves out ensurepip, without which `python3 -m venv` fails. Those are only
# wanted while the venv has no uwsgi yet.
set -e
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
missing=""
need() { missing="$missing $1"; }

command -v redis-server >/dev/null 2>&1 || need redis-server
# redis-cli joins the nodes of JOBMASTER_REDIS_MODE=cluster (and the tests' clusters)
command -v redis-cli >/dev/null 2>&1 || need redis-tools
command -v wrk >/dev/null 2>&1 || need wrk
{ command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; } || need nginx-light
# tests/stack/test_systemd_units.py checks the units with systemd-analyze verify
command -v systemd-analyze >/dev/null 2>&1 || need systemd
# tests/browser/ drive Debian's chromium (Playwright never downloads a browser here)
command -v chromium >/dev/null 2>&1 || need chromium
if [ ! -x "$VENV/bin/uwsgi" ]; then
  command -v "$PYTHON" >/dev/null 2>&1 || need python3
  command -v gcc >/dev/null 2>&1 || need "gcc libc6-dev"
  "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    >/dev/null 2>&1 || need python3-dev
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1 || need python3-venv
  fi
fi

if [ "$1" = "--list" ]; then
  echo $missing
  exit 0
fi
if [ -n "$missing" ]; then
  echo "installing:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
