"""Rigid transforms and a small tf2-like cache, without ROS (tf2_ros is not installed here).

Naming: ``T_a_b`` maps points expressed in frame ``b`` into frame ``a``. A ``TransformStamped``
with ``header.frame_id = a`` and ``child_frame_id = b`` carries ``T_a_b``; so does an
``Odometry`` with the same frame ids (its pose is the child's pose in the parent frame).
Quaternions are (x, y, z, w), the geometry_msgs order and scipy's default.

``TransformCache`` keeps a frame tree (one parent per frame): static edges (extrinsics from
parameters or ``/tf_static``) and stamped edges (``/tf``, odometry) in bounded per-edge buffers.
``lookup_or_raise(target, source, stamp_ns, tolerance_ns)`` composes the chain at ``stamp_ns``,
interpolating each stamped edge between its bracketing samples (linear translation, Slerp
rotation). It never extrapolates: a stamp outside a buffer's span by more than ``tolerance_ns``
raises ``TransformLookupError``; within the tolerance the
nearest end sample is used unchanged.

Messages are read by attribute only (``TransformStamped``, ``Odometry``, ``Pose``, ``Transform``):
rclpy messages and ``rosbags``' deserialised dataclasses both work, so the node and training on
recorded bags fill the same cache. Building ROS messages and the ``tf2_ros`` adapter live in
``sphmask_ros.transforms``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

__all__ = [
    "Transform",
    "TransformLookupError",
    "TransformSource",
    "TransformCache",
    "stamp_to_ns",
]


class TransformLookupError(LookupError):
    """No transform between two frames at the requested time (reason in the message)."""


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _quat(q: Sequence[float]) -> Rotation:
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.isfinite(q).all():
        raise ValueError(f"quaternion must be 4 finite numbers (x, y, z, w), got {q}")
    if np.linalg.norm(q) < 1e-9:
        raise ValueError("quaternion has zero norm")
    return Rotation.from_quat(q)  # scalar-last: x, y, z, w


@dataclass(frozen=True)
class Transform:
    """A rigid transform ``p' = R p + t`` (``T_a_b``: frame b -> frame a)."""

    rotation: Rotation = field(default_factory=Rotation.identity)
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) float64

    def __post_init__(self) -> None:
        t = np.asarray(self.translation, dtype=np.float64).reshape(-1)
        if t.shape != (3,) or not np.isfinite(t).all():
            raise ValueError(f"translation must be 3 finite numbers, got {self.translation}")
        object.__setattr__(self, "translation", t)
        if not self.rotation.single:
            raise ValueError("Transform needs a single rotation, not a stack")

    @staticmethod
    def identity() -> "Transform":
        return Transform()

    @staticmethod
    def from_xyz_quat(xyz: Sequence[float], quat_xyzw: Sequence[float]) -> "Transform":
        return Transform(_quat(quat_xyzw), np.asarray(xyz, dtype=np.float64))

    @staticmethod
    def from_matrix(matrix: np.ndarray) -> "Transform":
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"matrix must be 4x4, got {m.shape}")
        return Transform(Rotation.from_matrix(m[:3, :3]), m[:3, 3])

    @property
    def quat_xyzw(self) -> np.ndarray:
        return self.rotation.as_quat()

    def as_matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.rotation.as_matrix()
        m[:3, 3] = self.translation
        return m

    def compose(self, other: "Transform") -> "Transform":
        """``self * other``: apply ``other`` first (``T_a_c = T_a_b.compose(T_b_c)``)."""
        return Transform(self.rotation * other.rotation,
                         self.rotation.apply(other.translation) + self.translation)

    __mul__ = compose

    def inverse(self) -> "Transform":
        inv = self.rotation.inv()
        return Transform(inv, -inv.apply(self.translation))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points -> (N, 3), keeping float32 input float32.

        Written as 1-D multiply-adds per output column rather than ``pts @ R.T``: a (N, 3) x
        (3, 3) product goes through multi-threaded BLAS, which is up to 20x slower when the
        cores are busy (measured on a loaded 2-core machine).
        """
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
        dt = pts.dtype if pts.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        pts = pts.astype(dt, copy=False)
        r = self.rotation.as_matrix()  # (3, 3) float64
        out = np.empty(pts.shape, dtype=dt)  # (N, 3)
        x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
        for k in range(3):
            col = out[:, k]
            np.multiply(x, dt.type(r[k, 0]), out=col)
            col += y * dt.type(r[k, 1])
            col += z * dt.type(r[k, 2])
            col += dt.type(self.translation[k])
        return out

    def is_close(self, other: "Transform", atol: float = 1e-9) -> bool:
        return bool(np.allclose(self.as_matrix(), other.as_matrix(), atol=atol))

    @staticmethod
    def interpolate(a: "Transform", b: "Transform", alpha: float) -> "Transform":
        """Linear translation and Slerp rotation, ``alpha`` 0 -> a, 1 -> b."""
        rots = Rotation.concatenate([a.rotation, b.rotation])
        rot = Slerp([0.0, 1.0], rots)([alpha])[0]
        return Transform(rot, (1.0 - alpha) * a.translation + alpha * b.translation)

    @staticmethod
    def from_msg(msg: Any) -> "Transform":
        """From geometry_msgs Pose (position/orientation) or Transform (translation/rotation)."""
        if hasattr(msg, "position"):
            p, q = msg.position, msg.orientation
        elif hasattr(msg, "translation"):
            p, q = msg.translation, msg.rotation
        else:
            raise TypeError(f"expected geometry_msgs Pose or Transform, got {type(msg).__name__}")
        return Transform.from_xyz_quat((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))


class TransformSource(Protocol):
    """What the preprocessor needs: ``T_target_source`` at a stamp."""

    def lookup_or_raise(self, target_frame: str, source_frame: str, stamp_ns: int,
                        tolerance_ns: int = 0) -> Transform: ...


@dataclass
class _Samples:
    stamps: list[int] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)


class TransformCache:
    """Frame tree of static and stamped edges with interpolating, non-extrapolating lookup.

    Each stamped edge keeps at most ``max_samples`` samples and drops samples older than
    ``max_age_ns`` before its newest one (tf2's cache time, 10 s by default).
    """

    def __init__(self, max_samples: int = 1000, max_age_ns: int = 10_000_000_000) -> None:
        if max_samples < 1 or max_age_ns <= 0:
            raise ValueError("max_samples must be >= 1 and max_age_ns > 0")
        self.max_samples = max_samples
        self.max_age_ns = max_age_ns
        self._parent: dict[str, str] = {}
        self._static: dict[str, Transform] = {}  # child -> T_parent_child
        self._dynamic: dict[str, _Samples] = {}

    # ---- filling
    def _link(self, parent: str, child: str) -> None:
        if not parent or not child:
            raise ValueError(f"frame ids must be non-empty (parent '{parent}', child '{child}')")
        if parent == child:
            raise ValueError(f"frame '{child}' cannot be its own parent")
        known = self._parent.get(child)
        if known is not None and known != parent:
            raise ValueError(
                f"frame '{child}' already has parent '{known}'; cannot also hang it on '{parent}'"
            )
        # Refuse a cycle: walking up from the new parent must never reach the child.
        frame: str | None = parent
        while frame is not None:
            if frame == child:
                raise ValueError(f"edge '{parent}' -> '{child}' would close a cycle")
            frame = self._parent.get(frame)
        self._parent[child] = parent

    def set_static(self, parent: str, child: str, transform: Transform) -> None:
        """A fixed ``T_parent_child`` (sensor extrinsic), valid at every stamp."""
        if child in self._dynamic:
            raise ValueError(f"edge to '{child}' is already stamped; cannot make it static")
        self._link(parent, child)
        self._static[child] = transform

    def set_static_from_params(self, parent: str, child: str, xyz: Sequence[float],
                               quat_xyzw: Sequence[float]) -> None:
        self.set_static(parent, child, Transform.from_xyz_quat(xyz, quat_xyzw))

    def add_sample(self, parent: str, child: str, stamp_ns: int, transform: Transform) -> None:
        """One stamped ``T_parent_child``; samples may arrive out of order."""
        if child in self._static:
            raise ValueError(f"edge to '{child}' is static; cannot add stamped samples")
        self._link(parent, child)
        buf = self._dynamic.setdefault(child, _Samples())
        i = bisect.bisect_left(buf.stamps, stamp_ns)
        if i < len(buf.stamps) and buf.stamps[i] == stamp_ns:
            buf.transforms[i] = transform  # same stamp again: newest value wins
        else:
            buf.stamps.insert(i, stamp_ns)
            buf.transforms.insert(i, transform)
        cutoff = buf.stamps[-1] - self.max_age_ns
        drop = max(bisect.bisect_left(buf.stamps, cutoff), len(buf.stamps) - self.max_samples)
        if drop > 0:
            del buf.stamps[:drop]
            del buf.transforms[:drop]

    def add_transform_stamped(self, msg: Any, static: bool = False) -> None:
        t = Transform.from_msg(msg.transform)
        parent, child = msg.header.frame_id, msg.child_frame_id
        if static:
            self.set_static(parent, child, t)
        else:
            self.add_sample(parent, child, stamp_to_ns(msg.header.stamp), t)

    def add_odometry(self, msg: Any) -> None:
        """nav_msgs/Odometry: the pose of ``child_frame_id`` in ``header.frame_id``."""
        self.add_sample(msg.header.frame_id, msg.child_frame_id, stamp_to_ns(msg.header.stamp),
                        Transform.from_msg(msg.pose.pose))

    def clear_stamped(self) -> None:
        """Forget stamped samples (e.g. when a bag loops and time jumps back)."""
        for child in self._dynamic:
            del self._parent[child]
        self._dynamic.clear()

    def frames(self) -> set[str]:
        return set(self._parent) | set(self._parent.values())

    # ---- lookup
    def _edge(self, child: str, stamp_ns: int, tolerance_ns: int) -> Transform:
        static = self._static.get(child)
        if static is not None:
            return static
        buf = self._dynamic[child]
        stamps = buf.stamps
        parent = self._parent[child]
        if stamp_ns < stamps[0] - tolerance_ns or stamp_ns > stamps[-1] + tolerance_ns:
            side = "past" if stamp_ns < stamps[0] else "future"
            raise TransformLookupError(
                f"extrapolation into the {side}: '{parent}' -> '{child}' requested at "
                f"{stamp_ns} ns, samples span [{stamps[0]}, {stamps[-1]}] ns, "
                f"tolerance {tolerance_ns} ns"
            )
        if stamp_ns <= stamps[0]:
            return buf.transforms[0]
        if stamp_ns >= stamps[-1]:
            return buf.transforms[-1]
        i = bisect.bisect_left(stamps, stamp_ns)
        if stamps[i] == stamp_ns:
            return buf.transforms[i]
        alpha = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
        return Transform.interpolate(buf.transforms[i - 1], buf.transforms[i], alpha)

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
        return chain

    def _to_ancestor(self, chain: list[str], stop: int, stamp_ns: int, tol: int) -> Transform:
        """T_{chain[stop]}_{chain[0]} composed edge by edge."""
        t = Transform.identity()
        for child in chain[:stop]:
            t = self._edge(child, stamp_ns, tol).compose(t)
        return t

    def lookup_or_raise(self, target_frame: str, source_frame: str, stamp_ns: int,
                        tolerance_ns: int = 0) -> Transform:
        """``T_target_source`` at ``stamp_ns``; raises ``TransformLookupError`` with the reason."""
        if tolerance_ns < 0:
            raise ValueError("tolerance_ns must be >= 0")
        if target_frame == source_frame:
            return Transform.identity()
        for frame in (target_frame, source_frame):
            if frame not in self.frames():
                raise TransformLookupError(f"frame '{frame}' is unknown to the transform cache")
        src_chain, tgt_chain = self._chain(source_frame), self._chain(target_frame)
        common = set(src_chain) & set(tgt_chain)
        if not common:
            raise TransformLookupError(
                f"frames '{target_frame}' and '{source_frame}' are not connected "
                f"(roots '{tgt_chain[-1]}' and '{src_chain[-1]}')"
            )
        lca = next(f for f in src_chain if f in common)
        t_lca_src = self._to_ancestor(src_chain, src_chain.index(lca), stamp_ns, tolerance_ns)
        t_lca_tgt = self._to_ancestor(tgt_chain, tgt_chain.index(lca), stamp_ns, tolerance_ns)
        return t_lca_tgt.inverse().compose(t_lca_src)

