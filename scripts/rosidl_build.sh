# Shared by build_msgs.sh and build_fallback_msgs.sh (sourced, not run): build one CMake/rosidl
# interface package into a virtual environment with the ament tooling the ROS 2 PyPI wheels
# install under the venv prefix.

# The wheels' exported CMake targets name include folders of the machine that built them;
# point those at this interpreter's and this numpy's include folders.
rosidl_fix_wheel_paths() {  # VENV PYTHON
  local venv=$1 py=$2 py_inc np_inc
  py_inc=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  np_inc=$("$py" -c "import numpy; print(numpy.get_include())")
  { grep -rl '/opt/python/cp311-cp311' "$venv"/share/*/cmake/ 2>/dev/null || true; } | while read -r f; do
    sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
           -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
  done
}

# Configure, build and install SOURCE into VENV (log in BUILD/build.log); on failure say so in one
# line naming WHAT, show the log's tail and return 1. Extra arguments go to the configure step.
rosidl_cmake_install() {  # WHAT SOURCE BUILD VENV PYTHON [CMAKE_ARGS...]
  local what=$1 src=$2 build=$3 venv=$4 py=$5
  shift 5
  mkdir -p "$build"
  local log="$build/build.log"
  if ! ( export CMAKE_PREFIX_PATH="$venv" AMENT_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
         cmake -S "$src" -B "$build" -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$venv" \
               -DPython3_EXECUTABLE="$py" -DCMAKE_BUILD_TYPE=Release "$@" &&
         cmake --build "$build" -j "$(nproc)" &&
         cmake --install "$build" ) >"$log" 2>&1; then
    echo "error: building $what failed; the CMake log is $log (last lines below)." >&2
    tail -n 15 "$log" >&2
    return 1
  fi
}
