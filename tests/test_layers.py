"""The package stack, read from the source: `sphmask_core` at the bottom, `training` and
`sphmask_ros` each on top of it and never importing each other; and the colcon install (what
CMakeLists.txt installs) holds every first-party module its executables can import, lazy
function-level imports included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("sphmask_core", "sphmask_ros", "training")
# Who may import whom (the generated `sphmask` interfaces count as ROS).
ALLOWED = {
    "sphmask_core": {"sphmask_core"},
    "training": {"training", "sphmask_core"},
    "sphmask_ros": {"sphmask_ros", "sphmask_core", "sphmask"},
}


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Every absolute module name `path` imports anywhere (module level or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    if package is None:
        package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (REPO.joinpath(*parts).with_suffix(".py"), REPO.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def test_packages_import_only_what_the_stack_allows():
    bad = []
    for top, allowed in ALLOWED.items():
        for path in sorted((REPO / top).rglob("*.py")):
            for name in _imports(path):
                root = name.split(".")[0]
                if root in FIRST_PARTY + ("sphmask",) and root not in allowed:
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


def test_import_scan_sees_lazy_imports(tmp_path):
    # The scan must catch an import inside a function (how training.render once slipped in).
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from training.render import x\n    from .pipeline import y\n")
    assert {"training.render", "sphmask_ros.pipeline"} <= _imports(probe, "sphmask_ros")


def _cmake_install() -> tuple[set[str], list[Path]]:
    text = (REPO / "CMakeLists.txt").read_text()
    packages = set(re.findall(r"ament_python_install_package\((\w+)\)", text))
    programs: list[Path] = []
    for block in re.findall(r"install\(PROGRAMS(.*?)DESTINATION", text, re.S):
        programs += [REPO / p for p in block.split()]
    return packages, programs


def _closure(start: Path) -> set[str]:
    """First-party modules reachable from `start` through imports."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for name in _imports(todo.pop()):
            if name.split(".")[0] not in FIRST_PARTY or name in seen:
                continue
            seen.add(name)
            path = _module_file(name)
            if path is not None:
                todo.append(path)
    return {n for n in seen if _module_file(n) is not None}


def test_colcon_install_holds_every_module_its_executables_import():
    packages, programs = _cmake_install()
    assert programs and {"sphmask_core", "sphmask_ros"} <= packages
    missing = []
    for program in programs:
        assert program.is_file(), program
        for module in sorted(_closure(program)):
            if module.split(".")[0] not in packages:
                missing.append(f"{program.name} -> {module}")
    assert not missing, "not installed by CMakeLists.txt:\n" + "\n".join(missing)


def test_setup_console_scripts_resolve():
    text = (REPO / "setup.py").read_text()
    scripts = re.findall(r'"([\w-]+) = ([\w.]+):(\w+)"', text)
    assert scripts
    for name, module, func in scripts:
        path = _module_file(module)
        assert path is not None, f"{name}: no module {module}"
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body), (name, func)
