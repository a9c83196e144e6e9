"""``sphmask-eval``: evaluate benchmark-format prediction folders.

    sphmask-eval scannet --gt GT_DIR --pred PRED_DIR [--json OUT.json] [--min-region-size N]
                         [--classes FILE.yaml]
    sphmask-eval s3dis   --gt GT_DIR --pred PRED_DIR [--json OUT.json] [--classes FILE.yaml]

``--classes`` YAML: ``class_names: [...]`` and optionally ``label_ids: [...]`` (default 1..C), or
the training classes file (``classes`` / ``stuff`` / ``ignore_id``, sphmask_core/data/classes.py):
its instance classes get ids 1..C, as sphmask-predict writes them.
Errors exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import yaml
from tqdm import tqdm

from sphmask_core.evaluation.formats import FormatError, list_scenes, load_scene
from sphmask_core.evaluation.s3dis_eval import S3DIS_CLASS_NAMES, S3DIS_LABEL_IDS, S3DISEvaluator
from sphmask_core.evaluation.scannet_eval import (
    SCANNET_CLASS_NAMES,
    SCANNET_LABEL_IDS,
    ScanNetEvaluator,
)

PROG = "sphmask-eval"


class UsageError(Exception):
    """Bad command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Evaluate 3D instance segmentation predictions.")
    sub = parser.add_subparsers(dest="benchmark", required=True, parser_class=_Parser)
    for name, help_text in (
        ("scannet", "ScanNet benchmark AP / AP50 / AP25"),
        ("s3dis", "S3DIS mPrec50 / mRec50 / mMUCov / mMWCov"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--gt", required=True, type=Path, help="folder of <scene>.txt GT files")
        p.add_argument("--pred", required=True, type=Path, help="folder of <scene>.txt prediction files")
        p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
        p.add_argument("--classes", type=Path, default=None, help="YAML with class_names [, label_ids]")
        if name == "scannet":
            p.add_argument("--min-region-size", type=int, default=100,
                           help="minimum points of GT and predicted instances (STPLS3D: 10)")
    return parser


def load_classes(path: Path) -> tuple[list[str], list[int]]:
    """Class names and label ids from a YAML file."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"classes file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and "classes" in data:
        from sphmask_core.data.classes import parse_classes

        names = list(parse_classes(data, path).labels.instance_names)
        return names, list(range(1, len(names) + 1))
    if not isinstance(data, dict) or "class_names" not in data:
        raise ValueError(f"{path}: expected a mapping with 'class_names' (and optional 'label_ids')")
    names = data["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: class_names must be a non-empty list of strings")
    ids = data.get("label_ids", list(range(1, len(names) + 1)))
    if (
        not isinstance(ids, list)
        or len(ids) != len(names)
        or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)
    ):
        raise ValueError(f"{path}: label_ids must be {len(names)} non-negative integers")
    return names, ids


def _fmt(x: float) -> str:
    return "    nan" if math.isnan(x) else f"{x:7.3f}"


def format_table(result: dict, columns: Sequence[str], means: Sequence[str]) -> str:
    width = max([len("mean")] + [len(n) for n in result["per_class"]]) + 2
    header = "class".ljust(width) + " ".join(c.rjust(7) for c in columns)
    lines = [header, "-" * len(header)]
    for name, vals in result["per_class"].items():
        lines.append(name.ljust(width) + " ".join(_fmt(vals[c]) for c in columns))
    lines.append("-" * len(header))
    lines.append("mean".ljust(width) + " ".join(_fmt(result[m]) for m in means))
    return "\n".join(lines)


def _json_safe(obj):
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def run(args: argparse.Namespace) -> dict:
    if args.classes is not None:
        names, ids = load_classes(args.classes)
    elif args.benchmark == "scannet":
        names, ids = list(SCANNET_CLASS_NAMES), list(SCANNET_LABEL_IDS)
    else:
        names, ids = list(S3DIS_CLASS_NAMES), list(S3DIS_LABEL_IDS)
    if args.benchmark == "scannet":
        if args.min_region_size < 1:
            raise ValueError(f"--min-region-size must be >= 1, got {args.min_region_size}")
        evaluator = ScanNetEvaluator(names, ids, args.min_region_size)
    else:
        evaluator = S3DISEvaluator(names, ids)
    scenes = list_scenes(args.gt, args.pred)
    # disable=None: no bar when stderr is not a terminal (keeps error output to one line).
    for scene in tqdm(scenes, desc="scenes", unit="scene", disable=None):
        gt, preds = load_scene(args.gt, args.pred, scene)
        evaluator.add_scene(gt, preds)
    return evaluator.result()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result = run(args)
        if args.benchmark == "scannet":
            cols, means = ("AP", "AP50", "AP25"), ("AP", "AP50", "AP25")
        else:
            cols = ("Prec50", "Rec50", "MUCov", "MWCov")
            means = ("mPrec50", "mRec50", "mMUCov", "mMWCov")
        print(format_table(result, cols, means))
        print(f"{len(result['per_class'])} classes, {result['num_scenes']} scenes")
        if args.json is not None:
            args.json.write_text(json.dumps(_json_safe(result), indent=2) + "\n")
    except UsageError as exc:
        print(f"{PROG}: usage error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (FormatError, ValueError, OSError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
