"""Host-side overhead of the ROS node around the model: decode, transform, accumulate,
voxelize, encode, for clouds of 100k, 300k and 1M points.

Clouds use PCL's PointXYZRGB layout (x y z at 0/4/8, packed rgb at 16, point_step 32, so 12 of
every 32 bytes are padding) with 5 % NaN points, sampled on the surfaces of a 8 x 6 x 3 m room.
Decode throughput (GB/s of message bytes) is printed beside a plain numpy copy of the same
bytes, timed in the same run, so the ratio is meaningful on a busy machine.
Each number is the best of ``--repeat`` runs after one warm-up.

Usage: python bench/bench_node_overhead.py [--sizes 100000 300000 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import array
import time
from collections.abc import Callable

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sphmask_core.sensor.pointcloud2 import decode_cloud
from sphmask_core.sensor.preprocess import PreprocessConfig, Preprocessor, voxel_downsample
from sphmask_core.sensor.transforms import Transform, TransformCache
from sphmask_ros.pointcloud2 import labelled_cloud, pack_rgb

NS = 1_000_000_000


def room_points(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) float32 points on the six faces of an 8 x 6 x 3 m box."""
    size = np.array([8.0, 6.0, 3.0])
    p = rng.random((n, 3)) * size
    axis = rng.integers(0, 3, n)
    p[np.arange(n), axis] = np.where(rng.random(n) < 0.5, 0.0, size[axis])
    return (p - size / 2).astype(np.float32)


def xyzrgb_cloud(n: int, seed: int, stamp_ns: int) -> PointCloud2:
    """A PointXYZRGB-layout cloud (point_step 32) with 5 % NaN points."""
    rng = np.random.default_rng(seed)
    xyz = room_points(n, rng)
    xyz[rng.random(n) < 0.05] = np.nan
    rgb = pack_rgb(rng.integers(0, 256, (n, 3)).astype(np.uint8))
    dtype = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4,
                      "offsets": [0, 4, 8, 16], "itemsize": 32})
    packed = np.zeros(n, dtype=dtype)
    for c, name in enumerate("xyz"):
        packed[name] = xyz[:, c]
    packed["rgb"] = rgb
    msg = PointCloud2()
    msg.header = Header(frame_id="sensor")
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS)
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name=name, offset=off, datatype=PointField.FLOAT32, count=1)
                  for name, off in (("x", 0), ("y", 4), ("z", 8), ("rgb", 16))]
    msg.is_bigendian, msg.is_dense = False, False
    msg.point_step, msg.row_step = 32, 32 * n
    data = array.array("B")
    data.frombytes(memoryview(packed.view(np.uint8)))
    msg.data = data
    return msg


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time in seconds over ``repeat`` runs after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_size(n: int, repeat: int) -> dict[str, float]:
    msgs = [xyzrgb_cloud(n, seed=k, stamp_ns=k * NS // 10) for k in range(3)]
    nbytes = len(msgs[0].data)
    raw = np.frombuffer(msgs[0].data, dtype=np.uint8)
    out: dict[str, float] = {"bytes": nbytes}
    out["copy"] = best_of(lambda: raw.copy(), repeat)
    out["decode"] = best_of(lambda: decode_cloud(msgs[0]), repeat)
    cloud = decode_cloud(msgs[0])
    pose = Transform.from_xyz_quat((1.0, -2.0, 0.5), (0.1, -0.2, 0.3, 0.9))
    out["transform"] = best_of(lambda: pose.apply(cloud.xyz), repeat)
    out["voxelize"] = best_of(lambda: voxel_downsample(cloud.xyz, cloud.rgb, 0.02), repeat)
    n_finite = len(cloud)
    inst = np.arange(n_finite) % 50 - 1
    score = np.full(n_finite, 0.5, np.float32)
    out["encode"] = best_of(
        lambda: labelled_cloud(Header(frame_id="map"), cloud.xyz, cloud.rgb, inst, inst % 18,
                               score), repeat)

    # Whole pipeline, 3 sweeps accumulated in a moving world frame, 2 cm voxels, no cap.
    def pipeline() -> dict[str, float]:
        cache = TransformCache()
        for k in range(3):
            cache.add_sample("world", "sensor", k * NS // 10,
                             Transform.from_xyz_quat((0.1 * k, 0, 0), (0, 0, 0, 1)))
        pre = Preprocessor(PreprocessConfig(fixed_frame="world", accumulate_frames=3,
                                            input_voxel_size=0.02, max_points=0, tolerance_s=0.0),
                           cache)
        result = None
        for m in msgs:
            result = pre.process_msg(m)
        return result.timings

    pipeline()
    runs = [pipeline() for _ in range(repeat)]
    for stage in ("accumulate", "voxelize", "total"):
        out[f"pipe_{stage}"] = min(r[stage] for r in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"numpy {np.__version__}; best of {args.repeat}; times in ms; PointXYZRGB layout "
          "(32 B/point), 5 % NaN")
    head = (f"{'points':>9} {'MB':>6} {'copy':>7} {'decode':>7} {'dec GB/s':>8} {'copy GB/s':>9} "
            f"{'ratio':>6} {'transf':>7} {'voxel':>7} {'encode':>7} | {'3-sweep: acc':>12} "
            f"{'voxel':>7} {'total':>7}")
    print(head)
    for n in args.sizes:
        r = bench_size(n, args.repeat)
        gb = r["bytes"] / 1e9
        print(f"{n:>9} {r['bytes'] / 1e6:>6.1f} {r['copy'] * 1e3:>7.2f} {r['decode'] * 1e3:>7.2f} "
              f"{gb / r['decode']:>8.2f} {gb / r['copy']:>9.2f} {r['decode'] / r['copy']:>6.1f} "
              f"{r['transform'] * 1e3:>7.2f} {r['voxelize'] * 1e3:>7.1f} {r['encode'] * 1e3:>7.1f} | "
              f"{r['pipe_accumulate'] * 1e3:>12.2f} {r['pipe_voxelize'] * 1e3:>7.1f} "
              f"{r['pipe_total'] * 1e3:>7.1f}")
    print("ratio = decode time / plain numpy copy time of the same message bytes; 3-sweep = "
          "Preprocessor with 3 accumulated clouds (3x points) in a world frame, 2 cm voxels, "
          "total excludes decode.")


if __name__ == "__main__":
    main()
