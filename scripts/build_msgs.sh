#!/usr/bin/env bash
# Build our ROS 2 interfaces (msg/*.msg) into the virtual environment with CMake, using the
# ament/rosidl tooling that the ROS 2 PyPI wheels install under the venv prefix.
# Usage: scripts/build_msgs.sh [VENV_DIR]   (default: .venv next to this repo)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$repo/.venv"}
py="$venv/bin/python"

for tool in cmake cc c++; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: building the sphmask messages needs '$tool' (on Debian: apt-get install cmake build-essential)." >&2
    exit 1
  fi
done
[ -x "$py" ] || { echo "error: no virtual environment at $venv (run scripts/setup.sh)." >&2; exit 1; }

# Rebuild only when the interface definitions changed.
stamp="$venv/.sphmask_msgs.stamp"
digest=$(cat "$repo"/msg/*.msg "$repo/CMakeLists.txt" "$repo/package.xml" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && \
   "$py" -c "from sphmask.msg import InstanceArray" >/dev/null 2>&1; then
  echo "messages: up to date"
  exit 0
fi

. "$repo/scripts/rosidl_build.sh"
rosidl_fix_wheel_paths "$venv" "$py"
build="$repo/build/msgs"
log="$build/build.log"
rosidl_cmake_install "the sphmask messages" "$repo" "$build" "$venv" "$py" -DSPHMASK_INTERFACES_ONLY=ON || exit 1
if ! "$py" -c "from sphmask.msg import InstanceArray, Instance, ClassMap, ProcessingTime" 2>>"$log"; then
  echo "error: the sphmask messages were built but do not import; see $log." >&2
  exit 1
fi
echo "$digest" >"$stamp"
echo "messages: built and installed into $venv"
