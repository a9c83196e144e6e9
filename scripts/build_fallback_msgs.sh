#!/usr/bin/env bash
# Build the stand-in interface packages of fallback_msgs/ (tf2_msgs, vision_msgs) into the
# virtual environment, each only when the real package cannot be imported (a ROS install has
# them: then nothing is built). Same CMake/rosidl route as scripts/build_msgs.sh.
# Usage: scripts/build_fallback_msgs.sh [VENV_DIR]   (default: .venv next to this repo)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$repo/.venv"}
py="$venv/bin/python"
[ -x "$py" ] || { echo "error: no virtual environment at $venv (run scripts/setup.sh)." >&2; exit 1; }

# One probe message per package: importing it tells whether the package is usable.
declare -A probe=([tf2_msgs]=TFMessage [vision_msgs]=Detection3DArray)

for pkg in tf2_msgs vision_msgs; do
  src="$repo/fallback_msgs/$pkg"
  stamp="$venv/.sphmask_fallback_$pkg.stamp"
  digest=$(cat "$src"/msg/*.msg "$src/CMakeLists.txt" "$src/package.xml" | sha256sum | cut -d' ' -f1)
  imports() { "$py" -c "from $pkg.msg import ${probe[$pkg]}" >/dev/null 2>&1; }
  if [ ! -f "$stamp" ] && imports; then
    echo "$pkg: installed by ROS, stand-in not built"
    continue
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && imports; then
    echo "$pkg (stand-in): up to date"
    continue
  fi
  py_inc=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  np_inc=$("$py" -c "import numpy; print(numpy.get_include())")
  { grep -rl '/opt/python/cp311-cp311' "$venv"/share/*/cmake/ 2>/dev/null || true; } | while read -r f; do
    sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
           -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
  done
  build="$repo/build/fallback_$pkg"
  mkdir -p "$build"
  log="$build/build.log"
  if ! ( export CMAKE_PREFIX_PATH="$venv" AMENT_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
         cmake -S "$src" -B "$build" -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$venv" \
               -DPython3_EXECUTABLE="$py" -DCMAKE_BUILD_TYPE=Release &&
         cmake --build "$build" -j "$(nproc)" &&
         cmake --install "$build" ) >"$log" 2>&1; then
    echo "error: building the $pkg stand-in failed; the CMake log is $log (last lines below)." >&2
    tail -n 15 "$log" >&2
    exit 1
  fi
  if ! imports; then
    echo "error: the $pkg stand-in was built but does not import; see $log." >&2
    exit 1
  fi
  echo "$digest" >"$stamp"
  echo "$pkg (stand-in): built and installed into $venv"
done
