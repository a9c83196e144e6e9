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

# The wheels' exported CMake targets name include folders of the machine that built them;
# point those at this interpreter's and this numpy's include folders.
py_inc=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
np_inc=$("$py" -c "import numpy; print(numpy.get_include())")
{ grep -rl '/opt/python/cp311-cp311' "$venv"/share/*/cmake/ 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
done

build="$repo/build/msgs"
mkdir -p "$build"
log="$build/build.log"
export CMAKE_PREFIX_PATH="$venv" AMENT_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
if ! { cmake -S "$repo" -B "$build" -DSPHMASK_INTERFACES_ONLY=ON -DBUILD_TESTING=OFF \
         -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$py" -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$build" -j "$(nproc)" &&
       cmake --install "$build"; } >"$log" 2>&1; then
  echo "error: building the sphmask messages failed; the CMake log is $log (last lines below)." >&2
  tail -n 15 "$log" >&2
  exit 1
fi
if ! "$py" -c "from sphmask.msg import InstanceArray, Instance, ClassMap, ProcessingTime" 2>>"$log"; then
  echo "error: the sphmask messages were built but do not import; see $log." >&2
  exit 1
fi
echo "$digest" >"$stamp"
echo "messages: built and installed into $venv"
