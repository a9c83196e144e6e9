"""Start-up checks of the `--params-file` arguments, before rcl sees them.

rcl refuses a missing or unparsable parameter file inside `rclpy.init` with a multi-line
RCLError; the node executables check each file first and exit 1 with one line naming the file
and the problem. Parameters in the file that the node does not declare are ignored by rclpy;
`unknown_overrides` lists them so the node can warn about each by name at start (a typo such as
`scor_threshold` would otherwise be silently ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = ["params_files", "params_file_problem", "unknown_overrides"]

# Parameters every rclpy node has or accepts without declaring them.
_BUILTIN_PREFIXES = ("use_sim_time", "qos_overrides.", "start_type_description_service")


def params_files(argv: Sequence[str]) -> list[str]:
    """Paths given as `--params-file PATH` inside the `--ros-args` section(s) of argv."""
    out: list[str] = []
    in_ros = False
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg == "--params-file" and i + 1 < len(args):
            out.append(args[i + 1])
    return out


def params_file_problem(argv: Sequence[str]) -> str | None:
    """One line naming the first unreadable / malformed parameter file, or None."""
    for name in params_files(argv):
        path = Path(name)
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as exc:
            return f"cannot read parameter file '{path}': {exc.strerror or exc}"
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            return f"parameter file '{path}' is not valid YAML{where}"
        if not isinstance(doc, dict) or not any(
                isinstance(v, dict) and isinstance(v.get("ros__parameters"), dict)
                for v in doc.values()):
            return (f"parameter file '{path}' has no '<node name or /**>: ros__parameters:' "
                    f"section")
    return None


def unknown_overrides(node: Any, declared: Sequence[str]) -> list[str]:
    """Names given to `node` (parameter files, -p) that it does not declare, sorted."""
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    known = set(declared)
    return sorted(n for n in overrides
                  if n not in known and not n.startswith(_BUILTIN_PREFIXES))
