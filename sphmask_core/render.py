"""Pictures of a segmented point cloud, drawn with matplotlib (Agg: no display needed).

One renderer serves the demo, `sphmask-predict`, `sphmask-bag eval` and the model card: a top view
(metric axes, a scale bar, instance boxes and non-overlapping "class score" labels) above a
perspective view, one column for the prediction and, when the data has ground truth, one for the
ground truth beside it. Instances are coloured by their index; a ground-truth instance takes the
colour of the prediction that matches it (IoU >= 0.5), so a glance shows what was found. Only
instances at or above `score_threshold` are drawn: by default what the node publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sphmask_core.sensor.node_params import SPECS

# The node's `score_threshold` default: renders show what the node would publish unless a caller
# asks for another threshold.
PUBLISH_THRESHOLD: float = SPECS["score_threshold"].default
GT_LABEL_DIVISOR = 1000  # benchmark GT ids: (class + 1) * 1000 + instance + 1, 0 = void
MAX_RENDER_POINTS = 60_000  # points drawn per panel (a random subset beyond): a picture, not data
BACKGROUND_RGB = (0.78, 0.78, 0.78)
MATCH_IOU = 0.5


@dataclass
class Labelling:
    """Instances over a cloud: point_instance (N,) index into the per-instance arrays, -1 none;
    class_ids (K,) into the class names; scores (K,) or None (ground truth); boxes (K, 6) min
    xyz, max xyz or None (then taken from the points)."""

    point_instance: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray | None = None
    boxes: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.point_instance = np.asarray(self.point_instance, dtype=np.int64).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        k = len(self.class_ids)
        if self.point_instance.size and self.point_instance.max(initial=-1) >= k:
            raise ValueError(f"point_instance refers to instance {self.point_instance.max()} but only {k} exist")
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if len(self.scores) != k:
                raise ValueError(f"scores has {len(self.scores)} entries for {k} instances")
        if self.boxes is not None:
            self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 6)
            if len(self.boxes) != k:
                raise ValueError(f"boxes has {len(self.boxes)} rows for {k} instances")

    def __len__(self) -> int:
        return len(self.class_ids)

    def select(self, keep: np.ndarray) -> "Labelling":
        """The instances `keep` (K',) in that order; points of the others become -1."""
        keep = np.asarray(keep, dtype=np.int64)
        remap = np.full(len(self) + 1, -1, np.int64)  # last slot: -1 stays -1
        remap[keep] = np.arange(len(keep))
        return Labelling(remap[self.point_instance], self.class_ids[keep],
                         None if self.scores is None else self.scores[keep],
                         None if self.boxes is None else self.boxes[keep])

    @classmethod
    def from_instances(cls, inst: Any) -> "Labelling":
        """From an `Instances` result (or anything with point_instance, class_ids, scores, boxes)."""
        return cls(inst.point_instance, inst.class_ids, getattr(inst, "scores", None), getattr(inst, "boxes", None))

    @classmethod
    def from_gt_ids(cls, gt_ids: np.ndarray) -> "Labelling":
        """From benchmark GT ids (N,): `(class + 1) * 1000 + instance + 1`, 0 = void."""
        gt_ids = np.asarray(gt_ids, dtype=np.int64).reshape(-1)
        uniq, inverse = np.unique(gt_ids, return_inverse=True)
        valid = uniq > 0
        index = np.cumsum(valid) - 1  # (U,) instance index of each unique id
        point_instance = np.where(valid[inverse], index[inverse], -1)
        return cls(point_instance, uniq[valid] // GT_LABEL_DIVISOR - 1)


@dataclass
class RenderInfo:
    """What a render drew (for tests and reports): pixel size, the colour of every drawn instance
    per panel, the label boxes and the top-view axes in image pixels (x0, y0, x1, y1; y down) and
    the top view's metre limits (xmin, xmax, ymin, ymax)."""

    width: int
    height: int
    colors: dict[str, np.ndarray] = field(default_factory=dict)  # panel -> (K, 3) uint8
    label_boxes: dict[str, np.ndarray] = field(default_factory=dict)  # panel -> (K, 4) px
    top_limits: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    axes_px: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours: matplotlib's tab20, tab20b, tab20c without the greys
    (grey is the unlabelled background), cycled beyond their 54 colours."""
    import matplotlib

    table = np.concatenate([np.asarray(matplotlib.colormaps[n_].colors) for n_ in ("tab20", "tab20b", "tab20c")])
    table = table[np.ptp(table, axis=1) > 0.05]  # drop greys
    rgb = np.round(table * 255).astype(np.uint8)
    return rgb[np.arange(max(n, 0)) % len(rgb)]


def match_gt_to_pred(pred: Labelling, gt: Labelling) -> np.ndarray:
    """(G,) index of the prediction each GT instance is matched to (IoU >= 0.5 and the best such
    IoU; the masks are the points' instance labels), -1 for none."""
    g, k = len(gt), len(pred)
    if g == 0 or k == 0:
        return np.full(g, -1, np.int64)
    both = (gt.point_instance >= 0) & (pred.point_instance >= 0)
    inter = np.zeros((g, k), np.int64)
    np.add.at(inter, (gt.point_instance[both], pred.point_instance[both]), 1)
    gt_area = np.bincount(gt.point_instance[gt.point_instance >= 0], minlength=g)
    pr_area = np.bincount(pred.point_instance[pred.point_instance >= 0], minlength=k)
    iou = inter / np.maximum(gt_area[:, None] + pr_area[None, :] - inter, 1)  # (G, K)
    best = iou.argmax(axis=1)
    return np.where(iou[np.arange(g), best] >= MATCH_IOU, best, -1)


def _boxes_from_points(xyz: np.ndarray, lab: Labelling) -> np.ndarray:
    """(K, 6) min/max xyz of each instance's points (NaN for an instance without points)."""
    k = len(lab)
    lo = np.full((k, 3), np.inf)
    hi = np.full((k, 3), -np.inf)
    has = lab.point_instance >= 0
    np.minimum.at(lo, lab.point_instance[has], xyz[has])
    np.maximum.at(hi, lab.point_instance[has], xyz[has])
    empty = ~np.isfinite(lo).all(axis=1)
    lo[empty], hi[empty] = np.nan, np.nan
    return np.concatenate([lo, hi], axis=1)


def _nice_length(span: float) -> float:
    """A 1/2/5 x 10^n length of about a fifth of `span` metres (the scale bar)."""
    target = max(span / 5.0, 1e-3)
    base = 10.0 ** np.floor(np.log10(target))
    return float(base * max(m for m in (1, 2, 5) if m * base <= target))


def _overlaps(box: np.ndarray, placed: list[np.ndarray]) -> bool:
    return any(box[0] < p[2] and p[0] < box[2] and box[1] < p[3] and p[1] < box[3] for p in placed)


def _place_labels(ax: Any, renderer: Any, texts: list[Any], anchors: np.ndarray) -> np.ndarray:
    """Move each text (placed at its anchor, data coordinates) to the first of a ring of offsets
    where its box overlaps no label placed before it and stays inside the axes; (K, 4) boxes of
    the texts where they are drawn (display pixels, y up, with their frame; NaN = hidden)."""
    ax_box = ax.get_window_extent(renderer)
    placed: list[np.ndarray] = []
    out = np.full((len(texts), 4), np.nan)
    offsets = [(0.0, 0.0)] + [(r * np.cos(a), r * np.sin(a)) for r in (14, 28, 42, 60, 80, 105)
                              for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    to_data = ax.transData.inverted()
    for k, (text, anchor) in enumerate(zip(texts, anchors)):
        anchor_px = ax.transData.transform(anchor)
        bb = text.get_window_extent(renderer)  # measured once: moving a text keeps its size
        lo = np.array([bb.x0, bb.y0]) - anchor_px - 2.0  # + the label frame
        hi = np.array([bb.x1, bb.y1]) - anchor_px + 2.0
        for dx, dy in offsets:
            box = np.concatenate([anchor_px + (dx, dy) + lo, anchor_px + (dx, dy) + hi])
            inside = box[0] >= ax_box.x0 and box[2] <= ax_box.x1 and box[1] >= ax_box.y0 and box[3] <= ax_box.y1
            if inside and not _overlaps(box, placed):
                text.set_position(to_data.transform(anchor_px + (dx, dy)))
                placed.append(box)
                got = text.get_window_extent(renderer)  # reported as drawn, not as planned
                out[k] = (got.x0 - 2.0, got.y0 - 2.0, got.x1 + 2.0, got.y1 + 2.0)
                if (dx, dy) != (0.0, 0.0):  # a leader line back to the box corner
                    ax.annotate("", xy=anchor, xytext=text.get_position(),
                                arrowprops=dict(arrowstyle="-", lw=0.6, color="0.3"))
                break
        else:  # no free place: hidden rather than covering another label
            text.set_visible(False)
    return out


def _panel_colors(lab: Labelling, colors: np.ndarray) -> np.ndarray:
    """(N, 3) float RGB of every point: its instance colour, else grey."""
    out = np.tile(np.asarray(BACKGROUND_RGB), (len(lab.point_instance), 1))
    has = lab.point_instance >= 0
    out[has] = colors[lab.point_instance[has]] / 255.0
    return out


def _draw_top(ax: Any, xyz: np.ndarray, lab: Labelling, colors: np.ndarray, names: Sequence[str],
              boxes: np.ndarray, limits: tuple[float, float, float, float]) -> list[Any]:
    from matplotlib.patches import Rectangle
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    rgb = _panel_colors(lab, colors)
    bg = lab.point_instance < 0
    ax.scatter(xyz[bg, 0], xyz[bg, 1], s=1.0, c=rgb[bg], marker="s", linewidths=0, antialiased=False)
    ax.scatter(xyz[~bg, 0], xyz[~bg, 1], s=3.0, c=rgb[~bg], marker="s", linewidths=0, antialiased=False)
    texts = []
    for k in range(len(lab)):
        if not np.isfinite(boxes[k]).all():
            continue
        x0, y0, _, x1, y1, _ = boxes[k]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, ec=colors[k] / 255.0))
        label = names[lab.class_ids[k]] + ("" if lab.scores is None else f" {lab.scores[k]:.2f}")
        texts.append(ax.text(x0, y1, label, fontsize=7, ha="left", va="bottom", zorder=5,
                             bbox=dict(boxstyle="square,pad=0.15", fc="white", ec=colors[k] / 255.0, lw=0.8)))
    ax.set_xlim(limits[0], limits[1])
    ax.set_ylim(limits[2], limits[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.grid(True, lw=0.3, color="0.85")
    bar = _nice_length(min(limits[1] - limits[0], limits[3] - limits[2]))
    ax.add_artist(AnchoredSizeBar(ax.transData, bar, f"{bar:g} m", "lower right", pad=0.4, frameon=True,
                                  size_vertical=bar * 0.03))
    return texts


def _draw_perspective(ax: Any, xyz: np.ndarray, lab: Labelling, colors: np.ndarray) -> None:
    rgb = _panel_colors(lab, colors)
    ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], s=1.0, c=rgb, marker="s", linewidths=0, depthshade=False)
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    ext = np.maximum(hi - lo, 1e-3)
    ax.set_box_aspect((ext[0], ext[1], max(ext[2], 0.3 * ext[:2].max())))  # flat rooms stay readable
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(4))
    ax.view_init(elev=35, azim=-60)
    ax.set_xlabel("x [m]", fontsize=7, labelpad=-2)
    ax.set_ylabel("y [m]", fontsize=7, labelpad=-2)
    ax.set_zlabel("z [m]", fontsize=7, labelpad=-2)
    ax.tick_params(labelsize=6, pad=0)


def _subsample(n: int, limit: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def render_scene(
    path: str | Path,
    xyz: np.ndarray,
    class_names: Sequence[str],
    pred: Labelling,
    gt: Labelling | None = None,
    score_threshold: float = PUBLISH_THRESHOLD,
    frame_id: str = "",
    stamp_ns: int | None = None,
    title: str = "",
    size_px: tuple[int, int] | None = None,
    dpi: int = 100,
) -> RenderInfo:
    """Write the PNG of a segmented cloud to `path` (see module doc) and say what it drew.

    xyz (N, 3) metres; pred / gt over the same N points. Prediction instances below
    `score_threshold` are left out (0 = all). size_px (width, height) defaults to 700 px per
    column by 1000 px.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"render_scene expects xyz of shape (N, 3), got {xyz.shape}")
    for name, lab in (("pred", pred), ("gt", gt)):
        if lab is not None and len(lab.point_instance) != len(xyz):
            raise ValueError(f"{name} labels {len(lab.point_instance)} points, the cloud has {len(xyz)}")
        if lab is not None and len(lab) and (lab.class_ids.min() < 0 or lab.class_ids.max() >= len(class_names)):
            raise ValueError(f"{name} class ids must index the {len(class_names)} class names")
    if pred.scores is not None and score_threshold > 0:
        keep = np.flatnonzero(pred.scores >= score_threshold)
        pred = pred.select(keep[np.argsort(-pred.scores[keep], kind="stable")])
    panels = [("prediction", pred)] + ([("ground truth", gt)] if gt is not None else [])
    colors = {"prediction": palette(len(pred))}
    if gt is not None:
        match = match_gt_to_pred(pred, gt)
        spare = palette(len(pred) + len(gt))[len(pred):]  # unmatched GT: colours no prediction has
        colors["ground truth"] = np.where((match >= 0)[:, None], colors["prediction"][np.maximum(match, 0)]
                                          if len(pred) else spare, spare)
    width, height = size_px or (700 * len(panels), 1000)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    stamp = "" if stamp_ns is None else f"stamp {stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"
    head = "   ".join(s for s in (title, f"frame {frame_id}" if frame_id else "", stamp) if s)
    fig.suptitle(head, fontsize=10)
    info = RenderInfo(width=width, height=height)
    sub = _subsample(len(xyz), MAX_RENDER_POINTS)
    if len(xyz):
        lo, hi = xyz[:, :2].min(axis=0), xyz[:, :2].max(axis=0)
        pad = 0.05 * max(float(np.max(hi - lo)), 0.1)
        limits = (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)
    else:
        limits = (-1.0, 1.0, -1.0, 1.0)
    top_axes, texts_of = {}, {}
    for col, (name, lab) in enumerate(panels):
        boxes = lab.boxes if lab.boxes is not None else _boxes_from_points(xyz, lab)
        sub_lab = Labelling(lab.point_instance[sub], lab.class_ids, lab.scores)
        ax = fig.add_subplot(2, len(panels), col + 1)
        if lab.scores is not None:
            caption = f"{name}: {len(lab)} instances" + (f" (score >= {score_threshold:.2f})"
                                                          if score_threshold > 0 else "")
        else:
            caption = f"{name}: {len(lab)} instances"
        ax.set_title(caption, fontsize=9)
        texts_of[name] = _draw_top(ax, xyz[sub], sub_lab, colors[name], class_names, boxes, limits)
        top_axes[name] = ax
        ax3 = fig.add_subplot(2, len(panels), len(panels) + col + 1, projection="3d", proj_type="persp")
        _draw_perspective(ax3, xyz[sub] if len(sub) else np.zeros((1, 3)), sub_lab if len(sub) else
                          Labelling(np.array([-1]), lab.class_ids), colors[name])
        info.colors[name] = colors[name]
        info.top_limits[name] = limits
    fig.subplots_adjust(left=0.08, right=0.97, top=0.93, bottom=0.04, wspace=0.25, hspace=0.12)
    renderer = canvas.get_renderer()
    for name, ax in top_axes.items():
        ax.apply_aspect()  # the equal-aspect box is only settled at draw time otherwise
        bb = ax.get_window_extent(renderer)
        info.axes_px[name] = (bb.x0, height - bb.y1, bb.x1, height - bb.y0)
        boxes_px = _place_labels(ax, renderer, texts_of[name], np.array([t.get_position() for t in texts_of[name]]))
        info.label_boxes[name] = np.stack([boxes_px[:, 0], height - boxes_px[:, 3], boxes_px[:, 2],
                                           height - boxes_px[:, 1]], axis=1) if len(boxes_px) else boxes_px
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return info


def render_instances(path: str | Path, xyz: np.ndarray, inst: Any, gt_ids: np.ndarray | None = None,
                     **kwargs: Any) -> RenderInfo:
    """render_scene for an `Instances` result, with benchmark GT ids (N,) beside it when given."""
    gt = Labelling.from_gt_ids(gt_ids) if gt_ids is not None else None
    return render_scene(path, xyz, inst.class_names, Labelling.from_instances(inst), gt, **kwargs)


__all__ = ["Labelling", "PUBLISH_THRESHOLD", "RenderInfo", "match_gt_to_pred", "palette", "render_instances",
           "render_scene"]
