"""The one error type of the real-dataset loaders (PLY, ScanNetV2, S3DIS, STPLS3D).

A `DatasetError` message always names the offending file (or folder) and the problem, e.g.
"scene0000_00_vh_clean_2.labels.ply: 9 vertices but scene0000_00_vh_clean_2.ply has 10". It is a
ValueError so callers that already treat bad input as ValueError keep working.
"""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset file or folder is missing, malformed or inconsistent with its companions."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
