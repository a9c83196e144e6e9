#!/usr/bin/env bash
# Set everything up (idempotent) and run the demo: the node with the shipped model, fed from a
# recorded synthetic bag over DDS on loopback; prints a summary and writes a picture.
# Extra arguments go to sphmask-demo (see `sphmask-demo --help`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
. "$repo/scripts/ros_env.sh"
cd "$repo"
exec "$repo/.venv/bin/sphmask-demo" "$@"
