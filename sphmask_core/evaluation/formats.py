"""ScanNet benchmark file formats.

* GT file ``<scene>.txt``: one integer per point and line, ``label_id * 1000 + instance``,
  0 = unannotated.
* Prediction file ``<scene>.txt`` at the root of the prediction folder: one instance per line,
  ``<mask path relative to the file's folder> <label_id> <confidence>``; the mask file holds one
  integer per point and line, non-zero = in the instance (we write 0/1).

Malformed files raise :class:`FormatError` naming the file and, where it applies, the line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from sphmask_core.evaluation.scannet_eval import PredInstance

MASK_SUBDIR = "pred_mask"
# Output file of the official script; it may sit in a prediction folder and is not a scene.
_NOT_A_SCENE = {"semantic_instance_evaluation.txt"}


class FormatError(ValueError):
    """A benchmark file is missing or malformed."""


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise FormatError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def _parse_int_lines(data: bytes, path: Path) -> np.ndarray:
    """One integer per line; a final newline is optional, blank lines are errors."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    if not lines:
        return np.zeros(0, dtype=np.int64)
    try:
        return np.array(lines, dtype="S").astype(np.int64)
    except ValueError:
        pass
    for i, ln in enumerate(lines):  # error path only: find the offending line
        try:
            int(ln)
        except ValueError:
            shown = ln.decode("utf-8", "replace")[:40]
            raise FormatError(f"{path}:{i + 1}: expected one integer per line, got {shown!r}") from None
    raise FormatError(f"{path}: could not parse integers")  # unreachable in practice


def read_gt_file(path: str | os.PathLike) -> np.ndarray:
    """GT ids of one scene, (N,) int64."""
    path = Path(path)
    ids = _parse_int_lines(_read_bytes(path, "GT"), path)
    if ids.size == 0:
        raise FormatError(f"{path}: GT file is empty")
    bad = np.flatnonzero(ids < 0)
    if bad.size:
        raise FormatError(f"{path}:{bad[0] + 1}: GT id must be >= 0, got {ids[bad[0]]}")
    return ids


def read_mask_file(path: str | os.PathLike, n_points: int) -> np.ndarray:
    """(N,) bool mask; the file must have exactly ``n_points`` lines."""
    path = Path(path)
    data = _read_bytes(path, "mask")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    raw = np.frombuffer(data, dtype=np.uint8)
    # Fast path for the usual "0\n1\n..." layout.
    if raw.size == 2 * n_points and np.all(raw[1::2] == 10):
        digits = raw[0::2]
        if np.all((digits == 48) | (digits == 49)):
            return digits == 49
    values = _parse_int_lines(data, path)
    if values.shape[0] != n_points:
        raise FormatError(
            f"{path}: mask has {values.shape[0]} lines but the scene has {n_points} points"
        )
    return values != 0


def _parse_label(token: str, path: Path, line_no: int) -> int:
    try:
        value = float(token)
    except ValueError:
        raise FormatError(f"{path}:{line_no}: bad label id {token!r} (expected an integer)") from None
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise FormatError(f"{path}:{line_no}: bad label id {token!r} (expected an integer >= 0)")
    return int(value)


def _parse_confidence(token: str, path: Path, line_no: int) -> float:
    try:
        value = float(token)
    except ValueError:
        raise FormatError(f"{path}:{line_no}: bad confidence {token!r} (expected a number)") from None
    if not math.isfinite(value):
        raise FormatError(f"{path}:{line_no}: confidence must be finite, got {token!r}")
    return value


def read_prediction_file(
    pred_file: str | os.PathLike,
    n_points: int,
    pred_root: str | os.PathLike | None = None,
) -> list[PredInstance]:
    """Instances listed in one scene's prediction file, masks loaded and checked.

    Mask paths must be relative and stay inside ``pred_root`` (default: the file's folder).
    Blank lines are skipped.
    """
    pred_file = Path(pred_file)
    root = Path(pred_root if pred_root is not None else pred_file.parent).resolve()
    text = _read_bytes(pred_file, "prediction").decode("utf-8", "replace")
    preds: list[PredInstance] = []
    seen: dict[Path, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise FormatError(
                f"{pred_file}:{line_no}: expected '<mask file> <label id> <confidence>', "
                f"got {len(parts)} fields"
            )
        rel, label_tok, conf_tok = parts
        if os.path.isabs(rel):
            raise FormatError(f"{pred_file}:{line_no}: mask path must be relative, got {rel!r}")
        label_id = _parse_label(label_tok, pred_file, line_no)
        confidence = _parse_confidence(conf_tok, pred_file, line_no)
        mask_path = (pred_file.parent / rel).resolve()
        if root != mask_path and root not in mask_path.parents:
            raise FormatError(f"{pred_file}:{line_no}: mask {rel!r} points outside {root}")
        if not mask_path.is_file():
            raise FormatError(f"{pred_file}:{line_no}: mask file not found: {mask_path}")
        # The official script keys instances by mask path, so a repeated path would silently
        # replace the earlier instance there.
        if mask_path in seen:
            raise FormatError(
                f"{pred_file}:{line_no}: mask {rel!r} already listed on line {seen[mask_path]}"
            )
        seen[mask_path] = line_no
        try:
            mask = read_mask_file(mask_path, n_points)
        except FormatError as exc:
            raise FormatError(f"{pred_file}:{line_no}: {exc}") from None
        preds.append(PredInstance(mask=mask, label_id=label_id, confidence=confidence))
    return preds


def write_gt_file(path: str | os.PathLike, gt_ids: np.ndarray) -> None:
    ids = np.asarray(gt_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or (ids.size and ids.min() < 0):
        raise ValueError("gt_ids must be a 1-D array of non-negative integers")
    Path(path).write_text("".join(f"{v}\n" for v in ids.tolist()))


def write_mask_file(path: str | os.PathLike, mask: np.ndarray) -> None:
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    out = np.full(2 * mask.shape[0], 10, dtype=np.uint8)  # "0\n" / "1\n" per point
    out[0::2] = 48 + mask.astype(np.uint8)
    Path(path).write_bytes(out.tobytes())


def write_prediction_file(
    pred_dir: str | os.PathLike,
    scene: str,
    preds: Sequence[PredInstance],
    mask_subdir: str = MASK_SUBDIR,
) -> Path:
    """Write ``pred_dir/<scene>.txt`` and its masks under ``pred_dir/<mask_subdir>/``."""
    if not scene or any(c.isspace() for c in scene) or "/" in scene:
        raise ValueError(f"scene name must be non-empty without spaces or '/', got {scene!r}")
    root = Path(pred_dir)
    (root / mask_subdir).mkdir(parents=True, exist_ok=True)
    lines = []
    for k, p in enumerate(preds):
        rel = f"{mask_subdir}/{scene}_{k:03d}.txt"
        write_mask_file(root / rel, p.mask)
        lines.append(f"{rel} {int(p.label_id)} {float(p.confidence):.6f}\n")
    out = root / f"{scene}.txt"
    out.write_text("".join(lines))
    return out


def list_scenes(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike) -> list[str]:
    """Scene names present in both folders; a scene missing on either side is an error."""
    gt_root, pred_root = Path(gt_dir), Path(pred_dir)
    for d, what in ((gt_root, "GT"), (pred_root, "prediction")):
        if not d.is_dir():
            raise FormatError(f"{what} folder not found: {d}")
    gt = {p.stem for p in gt_root.glob("*.txt") if p.is_file()}
    pred = {p.stem for p in pred_root.glob("*.txt") if p.is_file() and p.name not in _NOT_A_SCENE}
    if not gt:
        raise FormatError(f"no GT files (*.txt) in {gt_root}")
    extra = sorted(pred - gt)
    if extra:
        raise FormatError(f"prediction file {pred_root / (extra[0] + '.txt')} has no GT file in {gt_root}")
    missing = sorted(gt - pred)
    if missing:
        raise FormatError(
            f"no prediction file for scene {missing[0]!r} in {pred_root} "
            f"({len(missing)} missing; write an empty file for a scene without instances)"
        )
    return sorted(gt)


def load_scene(
    gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, scene: str
) -> tuple[np.ndarray, list[PredInstance]]:
    """GT ids and predictions of one scene."""
    gt = read_gt_file(Path(gt_dir) / f"{scene}.txt")
    preds = read_prediction_file(Path(pred_dir) / f"{scene}.txt", gt.shape[0], pred_dir)
    return gt, preds
