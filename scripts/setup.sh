#!/usr/bin/env bash
# One-time (and idempotent) setup of the pip/venv installation:
#   .venv/ with the pinned dependencies, sphmask installed editable, our messages built.
# A second run takes seconds: each step is skipped when its inputs did not change.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"
py="$venv/bin/python"

if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 (3.10 or newer) is needed; on Debian: apt-get install python3 python3-venv." >&2
  exit 1
fi
if [ ! -x "$py" ]; then
  echo "setup: creating virtual environment $venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    echo "error: could not create a virtual environment; on Debian: apt-get install python3-venv." >&2
    exit 1
  fi
  "$py" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING' || true
fi

stamp="$venv/.sphmask_requirements.stamp"
digest=$(cat "$repo/requirements.txt" "$repo/setup.py" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "setup: installing pinned dependencies (first run: about a minute)"
  log="$venv/pip-install.log"
  if ! { "$py" -m pip install --disable-pip-version-check -r "$repo/requirements.txt" &&
         "$py" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e "$repo"; } \
       >"$log" 2>&1; then
    echo "error: installing the dependencies failed; pip's log is $log (last lines below)." >&2
    tail -n 15 "$log" >&2
    exit 1
  fi
  echo "$digest" >"$stamp"
else
  echo "setup: dependencies up to date"
fi

"$repo/scripts/build_msgs.sh" "$venv"
"$repo/scripts/build_fallback_msgs.sh" "$venv"
