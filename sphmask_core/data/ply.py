"""Read and write PLY files (ascii, binary_little_endian, binary_big_endian) with numpy.

`read_ply(path)` returns a dict with one entry per PLY element, each a numpy structured array in
native byte order (`out["vertex"]["x"]`, `out["vertex"]["label"]`, ...), plus `out["faces"]`, an
(F, k) int64 array of vertex indices, when the file has a `face` element with a
`vertex_indices` / `vertex_index` list. A list property whose records all have the same length k
becomes a sub-array field of shape (k,); a ragged one (mixed triangles and quads) becomes an
object field of int arrays and `faces` is then fan-triangulated to (T, 3).

Whole elements are decoded at once with structured dtypes (`np.frombuffer` for binary, one token
array for ascii); only ragged list elements fall back to a per-record loop.

`write_ply(path, vertices, faces=None, binary=True)` writes a vertex element (a dict of 1-D arrays
or a structured array, property types taken from the dtypes) and optionally triangles/polygons as
`property list uchar int vertex_indices`, which is the layout of ScanNet's `_vh_clean_2.ply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from sphmask_core.data.errors import DatasetError

# PLY type name -> numpy type code (byte order added per file).
_PLY_TO_NUMPY: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
# numpy type code -> the PLY name we write (the classic names every reader knows).
_NUMPY_TO_PLY: dict[str, str] = {
    "i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
    "i4": "int", "u4": "uint", "f4": "float", "f8": "double",
}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_FACE_LISTS = ("vertex_indices", "vertex_index")


@dataclass(frozen=True)
class PlyProperty:
    name: str
    code: str  # numpy type code of the value(s), e.g. "f4"
    count_code: str | None = None  # numpy type code of the list length; None = scalar property

    @property
    def is_list(self) -> bool:
        return self.count_code is not None


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[PlyProperty, ...]


@dataclass(frozen=True)
class PlyHeader:
    fmt: str  # "ascii", "binary_little_endian" or "binary_big_endian"
    elements: tuple[PlyElement, ...]
    data_offset: int  # byte offset of the first data byte after "end_header\n"
    comments: tuple[str, ...]


def _ply_type(token: str, path: Path) -> str:
    if token not in _PLY_TO_NUMPY:
        raise DatasetError(path, f"unknown PLY property type {token!r}")
    return _PLY_TO_NUMPY[token]


def parse_header(data: bytes, path: str | Path = "<bytes>") -> PlyHeader:
    """Parse the header of a PLY file held in `data`."""
    path = Path(path)
    if not data.startswith(b"ply"):
        raise DatasetError(path, "not a PLY file (does not start with 'ply')")
    end = data.find(b"end_header")
    if end < 0:
        raise DatasetError(path, "PLY header has no 'end_header' line")
    newline = data.find(b"\n", end)
    data_offset = len(data) if newline < 0 else newline + 1
    lines = data[:end].decode("ascii", errors="replace").splitlines()[1:]
    fmt: str | None = None
    comments: list[str] = []
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for lineno, raw in enumerate(lines, start=2):
        tokens = raw.split()
        if not tokens:
            continue
        key = tokens[0]
        if key == "format":
            if len(tokens) < 2 or tokens[1] not in _FORMATS:
                raise DatasetError(path, f"unsupported PLY format line {raw.strip()!r}")
            fmt = tokens[1]
        elif key in ("comment", "obj_info"):
            comments.append(raw.strip()[len(key):].strip())
        elif key == "element":
            if len(tokens) != 3 or not tokens[2].isdigit():
                raise DatasetError(path, f"malformed PLY header line {lineno}: {raw.strip()!r}")
            elements.append((tokens[1], int(tokens[2]), []))
        elif key == "property":
            if not elements:
                raise DatasetError(path, f"PLY header line {lineno}: property before any element")
            if len(tokens) == 5 and tokens[1] == "list":
                prop = PlyProperty(tokens[4], _ply_type(tokens[3], path), _ply_type(tokens[2], path))
            elif len(tokens) == 3:
                prop = PlyProperty(tokens[2], _ply_type(tokens[1], path))
            else:
                raise DatasetError(path, f"malformed PLY header line {lineno}: {raw.strip()!r}")
            elements[-1][2].append(prop)
        else:
            raise DatasetError(path, f"unknown PLY header keyword {key!r} on line {lineno}")
    if fmt is None:
        raise DatasetError(path, "PLY header has no 'format' line")
    return PlyHeader(
        fmt=fmt,
        elements=tuple(PlyElement(n, c, tuple(p)) for n, c, p in elements),
        data_offset=data_offset,
        comments=tuple(comments),
    )


# ----------------------------------------------------------------------------------- binary


def _scalar_dtype(element: PlyElement, order: str) -> np.dtype:
    return np.dtype([(p.name, order + p.code) for p in element.properties])


def _first_record_counts(element: PlyElement, buf: memoryview, offset: int, order: str, path: Path) -> list[int]:
    """List lengths of the element's first record (assumed for every record, then verified)."""
    counts: list[int] = []
    pos = offset
    for prop in element.properties:
        if prop.is_list:
            cdt = np.dtype(order + prop.count_code)
            if pos + cdt.itemsize > len(buf):
                raise DatasetError(path, f"PLY data truncated in element {element.name!r}")
            k = int(np.frombuffer(buf, cdt, count=1, offset=pos)[0])
            counts.append(k)
            pos += cdt.itemsize + k * np.dtype(prop.code).itemsize
        else:
            pos += np.dtype(prop.code).itemsize
    return counts


def _uniform_list_dtype(element: PlyElement, counts: list[int], order: str) -> np.dtype:
    fields: list[tuple] = []
    it = iter(counts)
    for prop in element.properties:
        if prop.is_list:
            k = next(it)
            fields.append((f"__count_{prop.name}", order + prop.count_code))
            fields.append((prop.name, order + prop.code, (k,)))
        else:
            fields.append((prop.name, order + prop.code))
    return np.dtype(fields)


def _ragged_binary(element: PlyElement, buf: memoryview, offset: int, order: str, path: Path) -> tuple[np.ndarray, int]:
    """Per-record decode of an element whose lists differ in length (polygon soups only)."""
    out_dtype = np.dtype([(p.name, object if p.is_list else "=" + p.code) for p in element.properties])
    out = np.empty(element.count, out_dtype)
    pos = offset
    try:
        for i in range(element.count):
            for prop in element.properties:
                if prop.is_list:
                    cdt = np.dtype(order + prop.count_code)
                    k = int(np.frombuffer(buf, cdt, count=1, offset=pos)[0])
                    pos += cdt.itemsize
                    vdt = np.dtype(order + prop.code)
                    out[prop.name][i] = np.frombuffer(buf, vdt, count=k, offset=pos).astype(np.int64)
                    pos += k * vdt.itemsize
                else:
                    vdt = np.dtype(order + prop.code)
                    out[prop.name][i] = np.frombuffer(buf, vdt, count=1, offset=pos)[0]
                    pos += vdt.itemsize
    except ValueError:
        raise DatasetError(path, f"PLY data truncated in element {element.name!r}") from None
    return out, pos


def _read_binary_element(element: PlyElement, buf: memoryview, offset: int, order: str, path: Path) -> tuple[np.ndarray, int]:
    if element.count == 0:
        dtype = np.dtype([(p.name, object if p.is_list else "=" + p.code) for p in element.properties])
        return np.empty(0, dtype), offset
    has_lists = any(p.is_list for p in element.properties)
    if has_lists:
        counts = _first_record_counts(element, buf, offset, order, path)
        dtype = _uniform_list_dtype(element, counts, order)
    else:
        dtype = _scalar_dtype(element, order)
    need = element.count * dtype.itemsize
    if offset + need <= len(buf):
        arr = np.frombuffer(buf, dtype, count=element.count, offset=offset)
        uniform = not has_lists or all(
            np.all(arr[f"__count_{p.name}"] == arr[f"__count_{p.name}"][0]) for p in element.properties if p.is_list
        )
        if uniform:
            keep = [p.name for p in element.properties]
            native = np.dtype([(n, dtype.fields[n][0].newbyteorder("=")) for n in keep])
            out = np.empty(element.count, native)
            for n in keep:
                out[n] = arr[n]
            return out, offset + need
    elif not has_lists:
        raise DatasetError(
            path, f"PLY data truncated: element {element.name!r} needs {need} bytes, {len(buf) - offset} left"
        )
    return _ragged_binary(element, buf, offset, order, path)


# ----------------------------------------------------------------------------------- ascii


def _read_ascii_element(element: PlyElement, lines: list[str], start: int, path: Path) -> np.ndarray:
    if element.count == 0:
        return np.empty(0, np.dtype([(p.name, object if p.is_list else "=" + p.code) for p in element.properties]))
    rows = lines[start : start + element.count]
    if len(rows) < element.count:
        raise DatasetError(
            path, f"PLY data truncated: element {element.name!r} has {len(rows)} of {element.count} lines"
        )
    has_lists = any(p.is_list for p in element.properties)
    widths = np.fromiter((len(r.split()) for r in rows), np.int64, count=len(rows)) if has_lists else None
    if not has_lists or (widths.size and np.all(widths == widths[0])):
        tokens = " ".join(rows).split()
        ncol = len(tokens) // element.count
        if (not has_lists and ncol != len(element.properties)) or len(tokens) != ncol * element.count:
            raise DatasetError(
                path,
                f"PLY ascii element {element.name!r}: expected {len(element.properties)} values per line, "
                f"got {len(tokens)} values in {element.count} lines",
            )
        try:
            table = np.array(tokens, dtype=np.float64).reshape(element.count, ncol)  # (n, ncol)
        except ValueError as exc:
            raise DatasetError(path, f"PLY ascii element {element.name!r}: {exc}") from None
        fields: list[tuple] = []
        columns: list[tuple[str, np.ndarray]] = []
        col = 0
        for prop in element.properties:
            if prop.is_list:
                k = int(table[0, col])
                if not np.all(table[:, col] == k):
                    raise DatasetError(path, f"PLY ascii element {element.name!r}: inconsistent list lengths")
                fields.append((prop.name, "=" + prop.code, (k,)))
                columns.append((prop.name, table[:, col + 1 : col + 1 + k]))
                col += 1 + k
            else:
                fields.append((prop.name, "=" + prop.code))
                columns.append((prop.name, table[:, col]))
                col += 1
        if col != ncol:
            raise DatasetError(path, f"PLY ascii element {element.name!r}: {ncol} values per line, header describes {col}")
        out = np.empty(element.count, np.dtype(fields))
        for name, values in columns:
            out[name] = values
        return out
    # Ragged lists: parse record by record (faces of polygon soups, not points).
    out = np.empty(element.count, np.dtype([(p.name, object if p.is_list else "=" + p.code) for p in element.properties]))
    for i, row in enumerate(rows):
        vals = row.split()
        pos = 0
        try:
            for prop in element.properties:
                if prop.is_list:
                    k = int(float(vals[pos]))
                    out[prop.name][i] = np.array(vals[pos + 1 : pos + 1 + k], dtype=np.float64).astype(np.int64)
                    pos += 1 + k
                else:
                    out[prop.name][i] = float(vals[pos])
                    pos += 1
        except (IndexError, ValueError):
            raise DatasetError(path, f"PLY ascii element {element.name!r}: malformed record {i}") from None
    return out


# ----------------------------------------------------------------------------------- public


def _faces_array(face: np.ndarray) -> np.ndarray | None:
    name = next((n for n in _FACE_LISTS if n in (face.dtype.names or ())), None)
    if name is None:
        return None
    col = face[name]
    if col.dtype != object:
        return col.reshape(len(face), -1).astype(np.int64)  # (F, k)
    # Fan triangulation of polygons: (v0, vi, vi+1).
    tris = [np.stack([np.full(len(p) - 2, p[0]), p[1:-1], p[2:]], axis=1) for p in col if len(p) >= 3]
    return np.concatenate(tris).astype(np.int64) if tris else np.zeros((0, 3), np.int64)


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PLY file: {element name: structured array} (+ "faces" (F, k) int64 when present)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    header = parse_header(data, path)
    if not any(e.name == "vertex" for e in header.elements):
        raise DatasetError(path, "PLY file has no 'vertex' element")
    out: dict[str, np.ndarray] = {}
    if header.fmt == "ascii":
        body = data[header.data_offset :].decode("ascii", errors="replace")
        lines = [ln for ln in body.splitlines() if ln.strip()]
        start = 0
        for element in header.elements:
            out[element.name] = _read_ascii_element(element, lines, start, path)
            start += element.count
    else:
        order = _FORMATS[header.fmt]
        buf = memoryview(data)
        offset = header.data_offset
        for element in header.elements:
            out[element.name], offset = _read_binary_element(element, buf, offset, order, path)
    if "face" in out:
        faces = _faces_array(out["face"])
        if faces is not None:
            n_vert = len(out["vertex"])
            if faces.size and (faces.min() < 0 or faces.max() >= n_vert):
                raise DatasetError(path, f"PLY face index out of range for {n_vert} vertices")
            out["faces"] = faces
    return out


def _as_structured(vertices: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(vertices, np.ndarray):
        if vertices.dtype.names is None:
            raise ValueError("write_ply: vertices must be a dict of 1-D arrays or a structured array")
        vertices = {n: vertices[n] for n in vertices.dtype.names}
    if not vertices:
        raise ValueError("write_ply: no vertex properties given")
    cols = {str(k): np.asarray(v) for k, v in vertices.items()}
    lengths = {k: (v.shape[0] if v.ndim == 1 else -1) for k, v in cols.items()}
    n = next(iter(lengths.values()))
    for k, length in lengths.items():
        if length != n:
            raise ValueError(f"write_ply: vertex property {k!r} must be 1-D of length {n}, got shape {cols[k].shape}")
    fields = []
    for k, v in cols.items():
        code = v.dtype.str[1:]
        if v.dtype == bool:
            code = "u1"
        elif code in ("i8", "u8"):
            # PLY has no 64-bit integers; narrow to 32 bits when the values allow it.
            info = np.iinfo(np.int32 if code == "i8" else np.uint32)
            if v.size and (v.min() < info.min or v.max() > info.max):
                raise ValueError(f"write_ply: property {k!r} does not fit into 32 bits")
            code = "i4" if code == "i8" else "u4"
        elif code not in _NUMPY_TO_PLY:
            raise ValueError(f"write_ply: property {k!r} has unsupported dtype {v.dtype}")
        fields.append((k, code))
    out = np.empty(n, np.dtype([(k, "=" + c) for k, c in fields]))
    for k, _ in fields:
        out[k] = cols[k]
    return out


def _ascii_format(code: str) -> str:
    if code == "f4":
        return "%.9g"
    if code == "f8":
        return "%.17g"
    return "%d"


def write_ply(
    path: str | Path,
    vertices: Mapping[str, np.ndarray] | np.ndarray,
    faces: np.ndarray | None = None,
    binary: bool = True,
    big_endian: bool = False,
    comments: tuple[str, ...] = (),
) -> None:
    """Write a vertex element (dict of 1-D arrays or structured array) and optional (F, k) faces."""
    path = Path(path)
    vert = _as_structured(vertices)
    face_arr = None
    if faces is not None:
        face_arr = np.asarray(faces)
        if face_arr.ndim != 2 or face_arr.dtype.kind not in "iu":
            raise ValueError(f"write_ply: faces must be an (F, k) integer array, got {face_arr.dtype} {face_arr.shape}")
        if face_arr.size and (face_arr.min() < 0 or face_arr.max() >= len(vert)):
            raise ValueError(f"write_ply: face index out of range for {len(vert)} vertices")
        if face_arr.shape[1] > 255:
            raise ValueError("write_ply: faces with more than 255 vertices do not fit a uchar count")
    fmt = "ascii" if not binary else ("binary_big_endian" if big_endian else "binary_little_endian")
    header = ["ply", f"format {fmt} 1.0", *[f"comment {c}" for c in comments], f"element vertex {len(vert)}"]
    header += [f"property {_NUMPY_TO_PLY[vert.dtype.fields[n][0].str[1:]]} {n}" for n in vert.dtype.names]
    if face_arr is not None:
        header += [f"element face {len(face_arr)}", "property list uchar int vertex_indices"]
    header.append("end_header")
    head = ("\n".join(header) + "\n").encode("ascii")
    with path.open("wb") as fh:
        fh.write(head)
        if binary:
            order = ">" if big_endian else "<"
            fh.write(vert.astype(vert.dtype.newbyteorder(order)).tobytes())
            if face_arr is not None:
                k = face_arr.shape[1]
                rec = np.empty(len(face_arr), np.dtype([("n", "u1"), ("idx", order + "i4", (k,))]))
                rec["n"] = k
                rec["idx"] = face_arr
                fh.write(rec.tobytes())
        else:
            fmts = [_ascii_format(vert.dtype.fields[n][0].str[1:]) for n in vert.dtype.names]
            table = np.empty((len(vert), len(fmts)), object)
            for j, n in enumerate(vert.dtype.names):
                table[:, j] = vert[n].tolist()
            if len(vert):
                np.savetxt(fh, table, fmt=fmts)
            if face_arr is not None and len(face_arr):
                counts = np.full((len(face_arr), 1), face_arr.shape[1], np.int64)
                np.savetxt(fh, np.hstack([counts, face_arr.astype(np.int64)]), fmt="%d")
