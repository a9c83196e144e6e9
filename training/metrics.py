"""The metrics history of a run: kept in checkpoints, mirrored to metrics.json, CSV files and
TensorBoard."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

LOG = logging.getLogger("sphmask.train")


class MetricsHistory:
    """Training / validation rows, kept in the checkpoint and mirrored to JSON and CSV files."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
        if rows:
            for kind in self.rows:
                self.rows[kind] = [dict(r) for r in rows.get(kind, [])]

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows[kind].append(row)

    def state(self) -> dict[str, list[dict[str, Any]]]:
        return {k: [dict(r) for r in v] for k, v in self.rows.items()}

    def write(self, run_dir: Path) -> None:
        tmp = run_dir / "metrics.json.tmp"
        tmp.write_text(json.dumps(self.rows, indent=1))
        os.replace(tmp, run_dir / "metrics.json")
        for kind, rows in self.rows.items():
            columns: list[str] = []
            for row in rows:
                columns.extend(k for k in row if k not in columns)
            with (run_dir / f"{kind}_metrics.csv").open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)


def open_tensorboard(run_dir: Path) -> Any:
    """A SummaryWriter when TensorBoard is installed, else None (with a one-line notice)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        LOG.info("TensorBoard is not installed; metrics go to metrics.json and *_metrics.csv only")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
