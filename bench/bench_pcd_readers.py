"""Our PCD reader (sphmask_core.data.pcd) against pypcd4 on real Kinect frames: speed and content.

    python bench/bench_pcd_readers.py                          # /work/shared/data/pcl_grabber_frames
    python bench/bench_pcd_readers.py --folder DIR --repeats 5

pypcd4 is not a project dependency (`pip install pypcd4==1.5.1` to run the comparison). Per file:
median read time of each reader (ms) and their ratio, and whether both give the same records
(every field, bit for bit, NaNs included) and the same organisation and viewpoint.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sphmask_core.data.pcd import read_pcd  # noqa: E402


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=Path("/work/shared/data/pcl_grabber_frames"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    try:
        from pypcd4 import PointCloud
    except ImportError:
        print("pypcd4 is not installed: pip install pypcd4==1.5.1")
        return 1
    files = sorted(args.folder.glob("*.pcd"))
    print(f"{'file':40} {'ours ms':>8} {'pypcd4 ms':>9} {'pypcd4/ours':>11}  same records")
    for path in files:
        ours = read_pcd(path)
        theirs = PointCloud.from_path(path)
        fields = list(ours.points.dtype.names)
        same = theirs.fields == tuple(fields) and len(theirs.pc_data) == len(ours.points) and all(
            np.array_equal(np.ascontiguousarray(ours.points[f]).view(np.uint8),
                           np.ascontiguousarray(theirs.pc_data[f]).view(np.uint8))
            for f in fields)
        same = same and (theirs.metadata.width, theirs.metadata.height) == (ours.width, ours.height)
        t_ours = _median_ms(lambda: read_pcd(path), args.repeats)
        t_theirs = _median_ms(lambda: PointCloud.from_path(path), args.repeats)
        print(f"{path.name:40} {t_ours:8.1f} {t_theirs:9.1f} {t_theirs / t_ours:11.2f}  {same} "
              f"({ours.data_format}, {len(ours.points)} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
