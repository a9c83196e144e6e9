"""YAML <-> nested dataclasses: the one converter for every config (model, training, data,
augmentation).

- `read_yaml` parses with `yaml.safe_load` rules, except that numbers in exponent form without a
  dot (`1e-4`, which YAML 1.1 leaves a string) are floats: learning rates and BatchNorm eps are
  written that way.
- `from_plain(cls, data, root)` builds a dataclass from plain data, checking every key and type
  against the field annotations; any problem is one error naming the full dotted key.
- `to_plain(obj)` is the inverse (init fields only).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

__all__ = ["read_yaml", "parse_yaml", "from_plain", "to_plain", "Converters"]

# Field types that are not dataclasses but convert to and from plain data themselves (e.g. a
# label set given by name): {type: (from_plain(value, dotted_key), to_plain(obj))}.
Converters = dict[type, tuple[Callable[[Any, str], Any], Callable[[Any], Any]]]


class _Loader(yaml.SafeLoader):
    """safe_load with exponent floats such as `1e-4` (no dot, which YAML 1.1 requires)."""


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def read_yaml(path: str | Path, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The mapping at the top of a YAML file ({} for an empty file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"config file not found: {path}") from None
    return parse_yaml(text, str(path), error)


def parse_yaml(text: str, name: str = "<string>", error: type[Exception] = ValueError) -> Any:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise error(f"config {name} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"config {name} must be a YAML mapping at the top level, got {type(data).__name__}")
    return data


def _key(root: str, key: str) -> str:
    return f"{root}.{key}" if root else key


def from_plain(cls: type, data: Any, root: str = "", error: type[Exception] = ValueError,
               converters: Converters | None = None) -> Any:
    """`cls(**data)` with every key and value checked (see module doc)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"config section '{root or '<root>'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        if key not in names:
            raise error(f"unknown config key '{_key(root, key)}' (known: {sorted(names)})")
    conv = converters or {}
    kwargs = {key: _convert(hints[key], value, _key(root, key), error, conv) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, error):
            raise
        raise error(f"config section '{root or '<root>'}': {exc}") from None


def _expects(path: str, what: str, value: Any, error: type[Exception]) -> Exception:
    return error(f"config key '{path}' expects {what}, got {value!r}")


def _convert(tp: Any, value: Any, path: str, error: type[Exception], conv: Converters) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, path, error, conv) if len(non_none) == 1 else value
    if tp in conv:
        try:
            return conv[tp][0](value, path)
        except ValueError as exc:
            raise error(str(exc)) from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_plain(tp, value, path, error, conv)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _expects(path, "a list", value, error)
        if origin is tuple and len(args) >= 1 and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _expects(path, f"a list of {len(args)}", value, error)
            return tuple(_convert(a, v, f"{path}[{i}]", error, conv) for i, (a, v) in enumerate(zip(args, value)))
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{path}[{i}]", error, conv) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _expects(path, "a mapping", value, error)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _expects(path, "true/false", value, error)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expects(path, "an integer", value, error)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _expects(path, "a number", value, error)
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # `run_name=7` on a command line reads as an int
        if not isinstance(value, str):
            raise _expects(path, "a string", value, error)
        return value
    return value


def to_plain(obj: Any, converters: Converters | None = None) -> Any:
    """Plain nested data (dicts, lists, numbers, str, bool) of a config dataclass."""
    conv = converters or {}
    if type(obj) in conv:
        return conv[type(obj)][1](obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name), conv) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, conv) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v, conv) for k, v in obj.items()}
    return obj
