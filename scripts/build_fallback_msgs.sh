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
. "$repo/scripts/rosidl_build.sh"

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
  rosidl_fix_wheel_paths "$venv" "$py"
  build="$repo/build/fallback_$pkg"
  log="$build/build.log"
  rosidl_cmake_install "the $pkg stand-in" "$src" "$build" "$venv" "$py" || exit 1
  if ! imports; then
    echo "error: the $pkg stand-in was built but does not import; see $log." >&2
    exit 1
  fi
  echo "$digest" >"$stamp"
  echo "$pkg (stand-in): built and installed into $venv"
done
