"""The shard sample format (documented in data/README.md): encode a clip to tar members and decode it back.

A sample is one clip (T frames) or one image (T = 1). Members of sample KEY inside a tar:
  KEY.json            metadata (see `ClipRecord` / README)
  KEY.frameNNN.png    RGB frame NNN (or .jpg)
  KEY.depthNNN.png    16-bit depth/disparity of frame NNN, value = stored / depth_scale   (encoding "png16")
  KEY.depth.npy       (T, H, W) float16 or float32 array                                  (encoding "f16"/"f32")
  KEY.depthNNN.f16.lz4 one LZ4 frame of frame NNN's raw float16 depth, row-major         (encoding "f16lz4")
  KEY.maskNNN.png     optional 8-bit validity mask (255 = valid)
Decoding never trusts a member: the json is checked against `META_SCHEMA` (`check_meta`) and every image header
against the json before anything is allocated or decoded; every failure raises `SampleError` with a reason from
`SKIP_REASONS`. The writer checks its own json against the same schema, so what is written is what is read.
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..trust import ReadError, image_size, npy_header, parse_json
from ..trust.compressed import lz4_frame_exact

# OpenCV is imported inside the functions that code images: `vda shard --help` reads this module's vocabulary.
FORMAT_VERSION = 1
DEPTH_KINDS = ("metric_depth", "relative_disparity", "pseudo_label", "none")
DEPTH_ENCODINGS = ("png16", "f16", "f32", "f16lz4")
PER_FRAME_DEPTH = {"png16": "png", "f16lz4": "f16.lz4"}  # member suffix of the per-frame encodings
FRAME_FORMATS = ("png", "jpg")
SAMPLE_TYPES = ("clip", "image")
# Why a streamed sample was skipped; the counters in `streams.SkipCounters` use exactly these names.
SKIP_REASONS = (
    "tar_error",        # the tar stream itself is truncated/corrupt (the rest of that shard is lost)
    "missing_member",   # json/frame/depth/mask member absent (e.g. cut by a truncated tar)
    "bad_metadata",     # json unreadable, outside META_SCHEMA, or disagreeing with the frames it describes
    "bad_image",        # a frame or mask PNG/JPEG does not decode
    "bad_depth",        # a depth member does not decode
    "nonfinite_depth",  # NaN/Inf in a stored depth
    "bad_shape",        # members disagree with each other (a depth, mask or later frame vs the first frame)
    "too_short",        # fewer frames than the clip length asked for
    "no_valid_target",  # every target pixel is invalid after masking (training only)
    "other_error",      # any other exception while decoding/transforming (logged with its message)
)


MAX_SIDE = 8192  # default limit on a sample's height and width (pixels); `max_side=` / DataModule `max_frame_side`

# KEY.json, key by key: (type, rule). The one statement of the schema in code; data/README.md states it for
# people and tests/test_data_schema.py checks that both list the same keys. `check_meta` enforces it.
META_SCHEMA: dict[str, tuple[str, str]] = {
    "format_version": ("int", f"== {FORMAT_VERSION}"),
    "sample_type": ("str", " | ".join(SAMPLE_TYPES)),
    "dataset": ("str", "non-empty"),
    "sequence": ("str", "non-empty"),
    "frame_indices": ("list[int]", "num_frames entries, each >= 0"),
    "num_frames": ("int", ">= 1; equals the frame members present"),
    "height": ("int", "1 .. max_side; equals the stored frames"),
    "width": ("int", "1 .. max_side; equals the stored frames"),
    "frame_format": ("str", " | ".join(FRAME_FORMATS)),
    "depth": ("object", "kind, units, encoding (unless kind none), scale (png16)"),
    "depth.kind": ("str", " | ".join(DEPTH_KINDS)),
    "depth.units": ("str", "any"),
    "depth.encoding": ("str", " | ".join(DEPTH_ENCODINGS) + " (absent when kind is none)"),
    "depth.scale": ("float", "finite, > 0 (png16 only)"),
    "has_mask": ("bool", "mask members present iff true"),
    "K": ("null | 3x3 float", "finite"),
    "poses": ("null | list of 4x4 float", "one finite matrix per frame"),
    "extra": ("object", "free-form"),
}


class SampleError(Exception):
    """A sample that must be skipped; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str):
        assert reason in SKIP_REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ClipRecord:
    """One clip (or image, T = 1) in memory. Depth value 0 (or mask False) means invalid."""

    frames: np.ndarray                      # uint8 (T, H, W, 3) RGB
    dataset: str
    sequence: str
    frame_indices: list[int]
    depth: np.ndarray | None = None         # float32 (T, H, W), metres for metric_depth
    mask: np.ndarray | None = None          # bool (T, H, W)
    K: np.ndarray | None = None             # (3, 3) pixel intrinsics of these frames
    poses: np.ndarray | None = None         # (T, 4, 4) camera-to-world, OpenCV axes (x right, y down, z forward)
    depth_kind: str = "metric_depth"
    depth_units: str = "m"
    sample_type: str = "clip"
    extra: dict = field(default_factory=dict)  # free-form, stored under "extra" in the json
    key: str = ""
    # JPEG frames left undecoded (`decode_members(defer_jpeg=True)`: decoded where the augmentation runs,
    # data/device_decode.py); `frames` is then (T, 0, 0, 3) and the stored size is (height, width) of the json.
    jpeg: list[bytes] | None = None
    jpeg_hw: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def sample_key(dataset: str, sequence: str, index: int) -> str:
    """A tar-safe key: no dots (webdataset splits the extension at the first dot) and no slashes."""
    return f"{_UNSAFE.sub('-', dataset)}__{_UNSAFE.sub('-', sequence)}__{index:06d}"


def auto_png16_scale(depth: np.ndarray) -> float:
    """The largest scale that still fits the largest finite value into 16 bits (finest quantisation)."""
    finite = depth[np.isfinite(depth) & (depth > 0)]
    top = float(finite.max()) if finite.size else 1.0
    return 65535.0 / top


def _png(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {img.shape} {img.dtype}")
    return buf.tobytes()


def _npy(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=False)
    return out.getvalue()


def encode_record(rec: ClipRecord, frame_format: str = "png", depth_encoding: str = "png16",
                  depth_scale: float | None = None, jpeg_quality: int = 95) -> dict[str, bytes]:
    """Tar members (extension -> bytes) of one sample. Non-finite depth is stored as 0 (invalid)."""
    frames = _checked_frames(rec, frame_format, depth_encoding)
    T, H, W, _ = frames.shape
    members = _frame_members(frames, frame_format, jpeg_quality)
    depth_meta = {"kind": "none" if rec.depth is None else rec.depth_kind, "units": rec.depth_units}
    if rec.depth is not None:
        depth_meta.update(_add_depth_members(members, rec, (T, H, W), depth_encoding, depth_scale))
    if rec.mask is not None:
        mask = np.asarray(rec.mask, dtype=bool)
        if mask.shape != (T, H, W):
            raise ValueError(f"{rec.sequence}: mask shape {mask.shape} != frames {(T, H, W)}")
        for t in range(T):
            members[f"mask{t:03d}.png"] = _png(mask[t].astype(np.uint8) * 255)
    meta = {
        "format_version": FORMAT_VERSION, "sample_type": rec.sample_type,
        "dataset": rec.dataset, "sequence": rec.sequence, "frame_indices": [int(i) for i in rec.frame_indices],
        "num_frames": T, "height": H, "width": W, "frame_format": frame_format,
        "depth": depth_meta, "has_mask": rec.mask is not None,
        "K": None if rec.K is None else np.asarray(rec.K, dtype=np.float64).reshape(3, 3).tolist(),
        "poses": None if rec.poses is None else np.asarray(rec.poses, dtype=np.float64).reshape(T, 4, 4).tolist(),
        "extra": rec.extra,
    }
    try:  # the writer emits exactly the schema the readers check
        check_meta(meta, max_side=None)
        check_members(meta, members)
    except SampleError as e:
        raise ValueError(f"{rec.sequence}: {e.detail}") from None
    members["json"] = json.dumps(meta, allow_nan=False).encode()
    return members


def _checked_frames(rec: ClipRecord, frame_format: str, depth_encoding: str) -> np.ndarray:
    """The record's frames as uint8 (T, H, W, 3), once its formats, kinds and frame indices are known good."""
    frames = np.asarray(rec.frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{rec.sequence}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frame_format not in FRAME_FORMATS or depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"frame_format {frame_format!r} / depth_encoding {depth_encoding!r} not supported")
    if rec.depth_kind not in DEPTH_KINDS or rec.sample_type not in SAMPLE_TYPES:
        raise ValueError(f"depth_kind {rec.depth_kind!r} / sample_type {rec.sample_type!r} not supported")
    if len(rec.frame_indices) != frames.shape[0]:
        raise ValueError(f"{rec.sequence}: {len(rec.frame_indices)} frame indices for {frames.shape[0]} frames")
    return frames


def _frame_members(frames: np.ndarray, frame_format: str, jpeg_quality: int) -> dict[str, bytes]:
    import cv2

    members: dict[str, bytes] = {}
    for t in range(frames.shape[0]):
        bgr = np.ascontiguousarray(frames[t, :, :, ::-1])
        if frame_format == "png":
            members[f"frame{t:03d}.png"] = _png(bgr)
        else:
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            members[f"frame{t:03d}.jpg"] = buf.tobytes()
    return members


def _add_depth_members(members: dict[str, bytes], rec: ClipRecord, shape: tuple[int, int, int],
                       depth_encoding: str, depth_scale: float | None) -> dict:
    """Adds the depth members (one PNG16 per frame, or depth.npy) and returns the json's depth entries they need."""
    depth = np.asarray(rec.depth, dtype=np.float32)
    if depth.shape != shape:
        raise ValueError(f"{rec.sequence}: depth shape {depth.shape} != frames {shape}")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    if depth_encoding == "f16lz4":  # per frame, so a worker inflates only its window's frames
        import lz4.frame

        half = depth.astype(np.float16)
        for t in range(shape[0]):
            members[f"depth{t:03d}.f16.lz4"] = lz4.frame.compress(half[t].tobytes())
        return {"encoding": depth_encoding}
    if depth_encoding != "png16":
        members["depth.npy"] = _npy(depth.astype(np.float16 if depth_encoding == "f16" else np.float32))
        return {"encoding": depth_encoding}
    scale = float(depth_scale) if depth_scale else auto_png16_scale(depth)
    q = np.rint(depth.astype(np.float64) * scale)
    if q.max(initial=0) > 65535:
        raise ValueError(f"{rec.sequence}: depth up to {depth.max():.4g} does not fit 16 bits at "
                         f"scale {scale:.6g}; pass a smaller depth_scale or use f16/f32")
    for t in range(shape[0]):
        members[f"depth{t:03d}.png"] = _png(q[t].astype(np.uint16))
    return {"encoding": depth_encoding, "scale": scale}


def _need(members: dict, name: str) -> bytes:
    if name not in members:
        raise SampleError("missing_member", f"member .{name} absent")
    return members[name]


def _bad(detail: str):
    raise SampleError("bad_metadata", detail)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, int | float)) and not isinstance(v, bool) and math.isfinite(v)


def _matrix(value, rows: int, cols: int, what: str) -> None:
    if not (isinstance(value, list) and len(value) == rows
            and all(isinstance(r, list) and len(r) == cols for r in value)):
        _bad(f"{what} must be a {rows}x{cols} list of numbers")
    if not all(_is_number(v) for r in value for v in r):
        _bad(f"{what} holds a non-number or a NaN/Inf")


def check_meta(meta, max_side: int | None = MAX_SIDE) -> dict:
    """`meta` against `META_SCHEMA`, or SampleError("bad_metadata") naming the first key that breaks it.

    Pure checks on the parsed json (no array is sized from it). max_side: the largest height/width accepted
    (None: no limit, the writer's own check). The parts run in the schema's order, so the first broken key is named.
    """
    if not isinstance(meta, dict):
        _bad(f"the json is a {type(meta).__name__}, not an object")
    missing = [k for k in META_SCHEMA if "." not in k and k not in meta]
    if missing:
        _bad(f"key(s) {', '.join(missing)} missing")
    _check_scalars(meta)
    _check_sizes(meta, max_side)
    _check_frame_indices_and_flags(meta)
    _check_depth(meta["depth"])
    _check_camera(meta["K"], meta["poses"], meta["num_frames"])
    return meta


def _check_scalars(meta: dict) -> None:
    """The integer keys, the format version, the closed vocabularies and the names."""
    for key in ("format_version", "num_frames", "height", "width"):
        if not _is_int(meta[key]):
            _bad(f"{key} must be an integer, got {meta[key]!r:.40}")
    if meta["format_version"] != FORMAT_VERSION:
        _bad(f"format_version {meta['format_version']} is not {FORMAT_VERSION} (written by another version)")
    for key, allowed in (("sample_type", SAMPLE_TYPES), ("frame_format", FRAME_FORMATS)):
        if meta[key] not in allowed:
            _bad(f"{key} {meta[key]!r:.40} is not one of {', '.join(allowed)}")
    for key in ("dataset", "sequence"):
        if not isinstance(meta[key], str):
            _bad(f"{key} must be a string, got {type(meta[key]).__name__}")


def _check_sizes(meta: dict, max_side: int | None) -> None:
    """At least one frame; height and width in 1..max_side (what the reader will allocate)."""
    if meta["num_frames"] < 1:
        _bad(f"num_frames {meta['num_frames']} < 1")
    for key in ("height", "width"):
        if meta[key] < 1 or (max_side is not None and meta[key] > max_side):
            _bad(f"{key} {meta[key]} is outside 1..{max_side} (the reader's max_side)")


def _check_frame_indices_and_flags(meta: dict) -> None:
    fi = meta["frame_indices"]
    if not isinstance(fi, list) or not all(_is_int(i) and i >= 0 for i in fi):
        _bad("frame_indices must be a list of integers >= 0")
    if len(fi) != meta["num_frames"]:
        _bad(f"{len(fi)} frame_indices for num_frames {meta['num_frames']}")
    if not isinstance(meta["has_mask"], bool):
        _bad(f"has_mask must be true or false, got {meta['has_mask']!r:.40}")
    if not isinstance(meta["extra"], dict):
        _bad(f"extra must be an object, got {type(meta['extra']).__name__}")


def _check_depth(d) -> None:
    """The depth object: its kind and units, and for stored depth the encoding (png16 with a usable scale)."""
    if not isinstance(d, dict):
        _bad(f"depth must be an object, got {type(d).__name__}")
    if d.get("kind") not in DEPTH_KINDS:
        _bad(f"depth.kind {d.get('kind')!r:.40} is not one of {', '.join(DEPTH_KINDS)}")
    if not isinstance(d.get("units"), str):
        _bad("depth.units must be a string")
    if d["kind"] != "none":
        if d.get("encoding") not in DEPTH_ENCODINGS:
            _bad(f"depth.encoding {d.get('encoding')!r:.40} is not one of {', '.join(DEPTH_ENCODINGS)}")
        if d["encoding"] == "png16" and not (_is_number(d.get("scale")) and d["scale"] > 0):
            _bad(f"png16 depth needs a finite scale > 0, got {d.get('scale')!r:.40}")


def _check_camera(K, poses, num_frames: int) -> None:
    """K a 3x3 matrix and poses one 4x4 matrix per frame, of finite numbers, where given."""
    if K is not None:
        _matrix(K, 3, 3, "K")
    if poses is not None:
        if not isinstance(poses, list) or len(poses) != num_frames:
            _bad(f"poses must be a list of num_frames {num_frames} matrices, got "
                 f"{len(poses) if isinstance(poses, list) else type(poses).__name__}")
        for t, pose in enumerate(poses):
            _matrix(pose, 4, 4, f"poses[{t}]")


_NUMBERED = re.compile(r"^(frame|depth|mask)(\d{3,})\.([\w.]+)$")


def check_members(meta: dict, members: dict) -> None:
    """The members `meta` promises are there (else missing_member) and no numbered member lies beyond them
    (num_frames, has_mask and depth.kind must describe what is stored: else bad_metadata)."""
    T, ext, enc = meta["num_frames"], meta["frame_format"], meta["depth"].get("encoding")
    kind = meta["depth"]["kind"]
    for t in range(T):
        _need(members, f"frame{t:03d}.{ext}")
        if kind != "none" and enc in PER_FRAME_DEPTH:
            _need(members, f"depth{t:03d}.{PER_FRAME_DEPTH[enc]}")
        if meta["has_mask"]:
            _need(members, f"mask{t:03d}.png")
    if kind != "none" and enc not in PER_FRAME_DEPTH:
        _need(members, "depth.npy")
    stored: dict[str, int] = {}
    for name in members:
        m = _NUMBERED.match(name)
        if m:
            stored[m.group(1)] = stored.get(m.group(1), 0) + 1
    if stored.get("frame", 0) > T:
        _bad(f"num_frames {T}, but {stored['frame']} frame members are stored")
    if kind == "none" and (stored.get("depth") or "depth.npy" in members):
        _bad("depth.kind is none, but depth members are stored")
    if stored.get("depth", 0) > T:
        _bad(f"num_frames {T}, but {stored['depth']} depth members are stored")
    if not meta["has_mask"] and stored.get("mask"):
        _bad("has_mask is false, but mask members are stored")
    if stored.get("mask", 0) > T:
        _bad(f"num_frames {T}, but {stored['mask']} mask members are stored")


def parse_meta(members: dict, max_side: int | None = MAX_SIDE) -> dict:
    """The sample's json, checked (`check_meta`, `check_members`) before any value of it is used."""
    raw = _need(members, "json")
    try:  # size cap, UTF-8, no NaN tokens, bounded nesting (trust.parse_json); then META_SCHEMA below
        meta = parse_json(raw, "json")
    except ReadError as exn:
        raise SampleError("bad_metadata", str(exn)) from None
    check_meta(meta, max_side)
    check_members(meta, members)
    return meta


def _header_check(buf: bytes, want: tuple[int, int], what: str, reason: str, bad_reason: str) -> None:
    """The image header must say `want` (H, W) before the image is decoded (nothing is sized from a lie)."""
    size = image_size(buf)
    if size is None:
        raise SampleError(bad_reason, f"{what} is not a PNG/JPEG")
    if size != want:
        raise SampleError(reason, f"{what} is {size[0]}x{size[1]}, json says {want[0]}x{want[1]}")


def _decode_png(buf: bytes, flags: int, what: str, reason: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(buf, np.uint8), flags)
    if img is None:
        raise SampleError(reason, f"{what} does not decode")
    return img


def decode_members(members: dict, frame_slice: slice = slice(None), depth_dtype=np.float32,
                   max_side: int | None = MAX_SIDE, defer_jpeg: bool = False) -> ClipRecord:
    """Decode raw tar members into a ClipRecord (only the frames in `frame_slice`), validating everything.

    depth_dtype np.float64 gives `stored / scale` in float64: a png16 benchmark shard written at the benchmark's
    own factor then yields exactly the metres the published evaluation computes from the source PNG.

    Order: json schema and member list (`parse_meta`), the first frame's header against height/width
    (bad_metadata), then each decoded member's header against them (bad_shape) before it is decoded, so no
    buffer is ever sized from an unchecked number.

    `defer_jpeg`: JPEG frames are header-checked but not decoded; the record carries their bytes (`jpeg`) for a
    decoder on the accelerator (data/device_decode.py). PNG frames are decoded as always.
    """
    import cv2

    meta = parse_meta(members, max_side)
    T, H, W = meta["num_frames"], meta["height"], meta["width"]
    ext = meta["frame_format"]
    ts = list(range(T))[frame_slice]
    _header_check(members[f"frame000.{ext}"], (H, W), "frame 0", "bad_metadata", "bad_image")
    defer = defer_jpeg and ext == "jpg"
    frames = np.empty((len(ts), 0, 0, 3) if defer else (len(ts), H, W, 3), np.uint8)
    jpeg = [] if defer else None
    for i, t in enumerate(ts):
        buf = members[f"frame{t:03d}.{ext}"]
        _header_check(buf, (H, W), f"frame {t}", "bad_shape", "bad_image")
        if defer:
            jpeg.append(bytes(buf))
            continue
        img = _decode_png(buf, cv2.IMREAD_COLOR, f"frame {t}", "bad_image")
        if img.shape != (H, W, 3):
            raise SampleError("bad_shape", f"frame {t} is {img.shape}, json says {(H, W, 3)}")
        frames[i] = img[:, :, ::-1]
    depth = None
    dmeta = meta["depth"]
    if dmeta["kind"] != "none":
        depth = _decode_depth(members, dmeta, ts, T, H, W, depth_dtype)
    mask = None
    if meta["has_mask"]:
        mask = np.empty((len(ts), H, W), bool)
        for i, t in enumerate(ts):
            buf = members[f"mask{t:03d}.png"]
            _header_check(buf, (H, W), f"mask {t}", "bad_shape", "bad_image")
            m = _decode_png(buf, cv2.IMREAD_UNCHANGED, f"mask {t}", "bad_image")
            if m.shape != (H, W):
                raise SampleError("bad_shape", f"mask {t} is {m.shape}, json says {(H, W)}")
            mask[i] = m > 0
    K = None if meta["K"] is None else np.asarray(meta["K"], np.float64)
    poses = None if meta["poses"] is None else np.asarray(meta["poses"], np.float64)[ts]
    return ClipRecord(frames=frames, dataset=meta["dataset"], sequence=meta["sequence"],
                      frame_indices=[meta["frame_indices"][t] for t in ts], depth=depth, mask=mask, K=K,
                      poses=poses, depth_kind=dmeta["kind"], depth_units=dmeta["units"],
                      sample_type=meta["sample_type"], extra=meta["extra"], jpeg=jpeg,
                      jpeg_hw=(H, W) if defer else None)


def _npy_array(buf: bytes, want: tuple[int, ...]) -> np.ndarray:
    """A float16/float32 `.npy` member as an array view, after its header is checked against `want` and the
    member's length (np.load would allocate whatever shape the header claims)."""
    f = io.BytesIO(buf)
    try:
        shape, dtype, fortran = npy_header(f, "depth.npy")
    except ReadError as exn:
        raise SampleError("bad_depth", str(exn)) from None
    if dtype.kind != "f" or dtype.itemsize not in (2, 4):
        raise SampleError("bad_depth", f"depth.npy holds {dtype}, not float16/float32")
    if tuple(shape) != want:
        raise SampleError("bad_shape", f"depth.npy is {tuple(shape)}, json says {want}")
    count = int(np.prod(shape))
    if len(buf) - f.tell() != count * dtype.itemsize:
        raise SampleError("bad_depth", f"depth.npy holds {len(buf) - f.tell()} data bytes, its header says "
                                       f"{count * dtype.itemsize}")
    return np.frombuffer(buf, dtype, count, f.tell()).reshape(shape, order="F" if fortran else "C")


def _decode_depth(members: dict, dmeta: dict, ts: list[int], T: int, H: int, W: int,
                  dtype=np.float32) -> np.ndarray:
    import cv2

    enc = dmeta["encoding"]
    if enc == "png16":
        scale = float(dmeta["scale"])
        depth = np.empty((len(ts), H, W), dtype)
        for i, t in enumerate(ts):
            buf = members[f"depth{t:03d}.png"]
            _header_check(buf, (H, W), f"depth {t}", "bad_shape", "bad_depth")
            # Decoded by hand: webdataset's image decoders silently reduce 16-bit PNGs to 8 bits.
            d = _decode_png(buf, cv2.IMREAD_UNCHANGED, f"depth {t}", "bad_depth")
            if d.dtype != np.uint16 or d.shape != (H, W):
                raise SampleError("bad_shape", f"depth {t} is {d.dtype} {d.shape}, want uint16 {(H, W)}")
            depth[i] = d.astype(dtype) / scale
        return depth
    if enc == "f16lz4":
        return _decode_f16lz4(members, ts, H, W, dtype)
    arr = _npy_array(members["depth.npy"], (T, H, W))
    depth = arr[ts].astype(dtype)
    if not np.isfinite(depth).all():
        raise SampleError("nonfinite_depth", f"{int((~np.isfinite(depth)).sum())} NaN/Inf depth values")
    return depth


def _decode_f16lz4(members: dict, ts: list[int], H: int, W: int, dtype) -> np.ndarray:
    """Each frame's LZ4 member inflated to exactly H*W float16 values (trust.compressed: no more is allocated)."""
    depth = np.empty((len(ts), H, W), dtype)
    for i, t in enumerate(ts):
        try:
            raw = lz4_frame_exact(members[f"depth{t:03d}.f16.lz4"], H * W * 2, f"depth {t}")
        except ReadError as exn:
            raise SampleError("bad_depth", str(exn)) from None
        depth[i] = np.frombuffer(raw, np.float16).reshape(H, W)
    if not np.isfinite(depth).all():
        raise SampleError("nonfinite_depth", f"{int((~np.isfinite(depth)).sum())} NaN/Inf depth values")
    return depth
