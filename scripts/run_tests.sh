#!/usr/bin/env bash
# Set everything up (idempotent) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
. "$repo/scripts/ros_env.sh"
cd "$repo"
exec "$repo/.venv/bin/python" -m pytest tests -q "$@"
