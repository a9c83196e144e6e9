# Sourced by our scripts: keep every DDS participant on loopback, in a domain of its own.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
if [ -z "${ROS_DOMAIN_ID:-}" ]; then
  # A domain that no ROS graph on this machine is using (sphmask_ros/ros_domain.py).
  _sphmask_py="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
  if [ -x "$_sphmask_py" ] && _sphmask_id=$("$_sphmask_py" -m sphmask_ros.ros_domain); then
    export ROS_DOMAIN_ID=$_sphmask_id
  else
    export ROS_DOMAIN_ID=$(( 20 + $$ % 80 ))
  fi
  unset _sphmask_py _sphmask_id
fi
# Fast DDS profile with a shared-memory segment big enough for multi-MB best-effort clouds
# between processes (config/fastdds.xml says why); a profile the caller chose is kept.
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/config/fastdds.xml"}
