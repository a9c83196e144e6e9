"""`sphmask-bag`: offline rosbag2 tools (record-synthetic, info, eval, play, export).

    sphmask-bag record-synthetic demo_output/room0 --frames 30 --rate 10
    sphmask-bag info demo_output/room0
    sphmask-bag eval demo_output/room0 --topic /points --out demo_output/room0_eval
    sphmask-bag play demo_output/room0 --rate 0.5
    sphmask-bag export demo_output/room0 demo_output/room0_frames --end 2.0

Errors a user can fix (missing bag or topic, unknown type, existing output, bad parameter)
exit with status 2 and one line on stderr; Ctrl-C exits with 130 after closing any bag being
written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]

PROG = "sphmask-bag"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Offline rosbag2 tools for sphmask.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rec = sub.add_parser("record-synthetic", help="write a bag of a sensor moving in a synthetic room")
    rec.add_argument("out_bag", type=Path)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--frames", type=int, default=30)
    rec.add_argument("--rate", type=float, default=10.0, help="frames per second (Hz)")
    rec.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    rec.add_argument("--points-per-frame", type=int, default=20000)
    rec.add_argument("--tf", action="store_true", help="also write the body poses as /tf")
    rec.add_argument("--overwrite", action="store_true")

    info = sub.add_parser("info", help="topics, types, counts, duration, ground truth")
    info.add_argument("bag", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ev = sub.add_parser("eval", help="run the model over a bag; metrics, output bag, renders")
    ev.add_argument("bag", type=Path)
    ev.add_argument("--topic", default="/points")
    ev.add_argument("--checkpoint", default=None, help="default: the params' checkpoint, else the shipped model")
    ev.add_argument("--params", type=Path, default=None, help="node parameter YAML (default config/sphmask.yaml)")
    ev.add_argument("--out", type=Path, default=None, help="output folder (default <bag>_eval)")
    ev.add_argument("--overwrite", action="store_true")
    ev.add_argument("--max-frames", type=int, default=0, help="0 = all")
    ev.add_argument("--min-region-size", type=int, default=100,
                    help="benchmark minimum instance size in points (100 = ScanNet)")
    ev.add_argument("--renders", type=int, default=3, help="PNG renders of this many frames")
    ev.add_argument("--no-progress", action="store_true")
    ev.add_argument("--classes", type=Path, default=None,
                    help="classes YAML naming the bag's semantic_id values (as for training)")

    exp = sub.add_parser("export", help="labelled clouds of a bag as a folder training dataset (.npz per frame)")
    exp.add_argument("bag", type=Path)
    exp.add_argument("out", type=Path)
    exp.add_argument("--topic", default="/points")
    exp.add_argument("--start", type=float, default=0.0, help="seconds from the first cloud (inclusive)")
    exp.add_argument("--end", type=float, default=float("inf"), help="seconds from the first cloud (exclusive)")
    exp.add_argument("--overwrite", action="store_true")

    play = sub.add_parser("play", help="publish a bag into the live ROS graph")
    play.add_argument("bag", type=Path)
    play.add_argument("--rate", type=float, default=1.0, help="multiple of the recorded rate")
    play.add_argument("--topics", nargs="+", default=None)
    play.add_argument("--loop", action="store_true")
    play.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                      help="wait this long before the first message")
    play.add_argument("--clock", nargs="?", type=float, const=40.0, default=0.0, metavar="HZ",
                      help="publish the bag's time on /clock (default 40 Hz) for use_sim_time")
    play.add_argument("--wait-subscribers", type=float, default=0.0, metavar="SECONDS",
                      help="wait up to this long for every topic to have a subscriber")
    play.add_argument("--wait-acked", type=float, default=5.0, metavar="SECONDS",
                      help="at the end, wait up to this long for reliable subscribers to "
                           "acknowledge every message (default 5)")
    return parser


def _default_params() -> Path | None:
    """config/sphmask.yaml of the source tree (or the installed share), if present."""
    here = Path(__file__).resolve().parents[2] / "config" / "sphmask.yaml"
    share = Path(sys.prefix) / "share" / "sphmask" / "config" / "sphmask.yaml"
    for path in (here, share):
        if path.is_file():
            return path
    return None


def _run(args: argparse.Namespace) -> int:
    if args.command == "record-synthetic":
        from sphmask_ros.bag.record import RecordConfig, record_synthetic

        cfg = RecordConfig(seed=args.seed, frames=args.frames, rate=args.rate,
                           storage=args.storage, points_per_frame=args.points_per_frame,
                           tf=args.tf).validate()
        result = record_synthetic(args.out_bag, cfg, overwrite=args.overwrite)
        print(f"wrote {result.path}: {result.frames} frames "
              f"({min(result.points)}..{max(result.points)} points), "
              + ", ".join(f"{t} x{n}" for t, n in result.counts.items()))
        return 0
    if args.command == "info":
        from dataclasses import asdict

        from sphmask_ros.bag.info import bag_info, format_info

        info = bag_info(args.bag)
        if args.json:
            data = asdict(info)
            data["path"] = str(info.path)
            data["duration_s"] = info.duration_s
            print(json.dumps(data, indent=2))
        else:
            print(format_info(info))
        return 0
    if args.command == "eval":
        from sphmask_ros.bag.evaluate import EvalConfig, evaluate_bag

        if args.max_frames < 0 or args.renders < 0 or args.min_region_size < 1:
            raise ValueError("--max-frames and --renders must be >= 0, --min-region-size >= 1")
        cfg = EvalConfig(bag=args.bag, topic=args.topic, checkpoint=args.checkpoint,
                         params_file=args.params or _default_params(), out=args.out,
                         overwrite=args.overwrite, max_frames=args.max_frames,
                         min_region_size=args.min_region_size, renders=args.renders,
                         progress=not args.no_progress, classes=args.classes)
        report = evaluate_bag(cfg, log=lambda s: print(s, file=sys.stderr))
        d = report.data
        lat = d["latency_ms"]
        print(f"frames: {d['frames']['processed']} processed, {d['frames']['skipped']} skipped "
              f"{d['frames']['skipped_by_reason'] or ''}")
        if lat["p50"] is not None:
            print(f"latency: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, max {lat['max']:.1f} ms")
        m = d["metrics"]
        if m is not None:
            fmt = lambda v: "nan" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"AP {fmt(m['AP'])}  AP50 {fmt(m['AP50'])}  AP25 {fmt(m['AP25'])} "
                  f"over {m['num_scenes']} frames")
        print(f"report: {report.out_dir / 'report.json'}")
        print(f"page:   {report.data['report_html']}")
        return 0
    if args.command == "export":
        from sphmask_ros.bag.export import export_frames

        st = export_frames(args.bag, args.out, args.topic, args.start, args.end, args.overwrite,
                           log=lambda s: print(s, file=sys.stderr))
        print(f"wrote {st.written} labelled frame(s) to {args.out} (skipped: {st.skipped_unlabelled} unlabelled, "
              f"{st.skipped_empty} empty, {st.skipped_invalid} invalid)")
        return 0
    if args.command == "play":
        from sphmask_ros.bag.play import PlayConfig, play_bag

        cfg = PlayConfig(rate=args.rate, topics=args.topics, loop=args.loop,
                         wait_subscribers_s=args.wait_subscribers, wait_acked_s=args.wait_acked,
                         clock_hz=args.clock, delay_s=args.delay)
        stats = play_bag(args.bag, cfg, log=lambda s: print(s, file=sys.stderr))
        print(f"published {stats.published} messages in {stats.wall_s:.1f} s")
        return 0
    raise ValueError(f"unknown command '{args.command}'")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sphmask-bag`; returns the exit status."""
    import warnings

    from sphmask_core.sensor.bag_reader import BagError

    # spconv's import-time deprecation noise is not the user's business
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; outputs written so far were closed", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user errors become one line, the rest propagate
        checkpoint = sys.modules.get("sphmask_core.checkpoint")
        user_errors: tuple[type[BaseException], ...] = (BagError, ValueError, FileNotFoundError)
        if checkpoint is not None:
            user_errors += (checkpoint.CheckpointError,)
        if not isinstance(exc, user_errors):
            raise
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
