"""The shard sample format (documented in data/README.md): encode a clip to tar members and decode it back.

A sample is one clip (T frames) or one image (T = 1). Members of sample KEY inside a tar:
  KEY.json            metadata (see `ClipRecord` / README)
  KEY.frameNNN.png    RGB frame NNN (or .jpg)
  KEY.depthNNN.png    16-bit depth/disparity of frame NNN, value = stored / depth_scale   (encoding "png16")
  KEY.depth.npy       (T, H, W) float16 or float32 array                                  (encoding "f16"/"f32")
  KEY.maskNNN.png     optional 8-bit validity mask (255 = valid)
Decoding never trusts a member: every failure raises `SampleError` with a reason from `SKIP_REASONS`.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

import numpy as np

# OpenCV is imported inside the functions that code images: `vda shard --help` reads this module's vocabulary.
FORMAT_VERSION = 1
DEPTH_KINDS = ("metric_depth", "relative_disparity", "pseudo_label", "none")
DEPTH_ENCODINGS = ("png16", "f16", "f32")
FRAME_FORMATS = ("png", "jpg")
SAMPLE_TYPES = ("clip", "image")
# Why a streamed sample was skipped; the counters in `streams.SkipCounters` use exactly these names.
SKIP_REASONS = (
    "tar_error",        # the tar stream itself is truncated/corrupt (the rest of that shard is lost)
    "missing_member",   # json/frame/depth/mask member absent (e.g. cut by a truncated tar)
    "bad_meta",         # json unreadable or inconsistent
    "bad_image",        # a frame or mask PNG/JPEG does not decode
    "bad_depth",        # a depth member does not decode
    "nonfinite_depth",  # NaN/Inf in a stored depth
    "bad_shape",        # member shapes disagree with each other or with the json
    "too_short",        # fewer frames than the clip length asked for
    "no_valid_target",  # every target pixel is invalid after masking (training only)
    "other_error",      # any other exception while decoding/transforming (logged with its message)
)


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
    import cv2

    frames = np.asarray(rec.frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{rec.sequence}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    T, H, W, _ = frames.shape
    if frame_format not in FRAME_FORMATS or depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"frame_format {frame_format!r} / depth_encoding {depth_encoding!r} not supported")
    if rec.depth_kind not in DEPTH_KINDS or rec.sample_type not in SAMPLE_TYPES:
        raise ValueError(f"depth_kind {rec.depth_kind!r} / sample_type {rec.sample_type!r} not supported")
    if len(rec.frame_indices) != T:
        raise ValueError(f"{rec.sequence}: {len(rec.frame_indices)} frame indices for {T} frames")
    members: dict[str, bytes] = {}
    for t in range(T):
        bgr = np.ascontiguousarray(frames[t, :, :, ::-1])
        if frame_format == "png":
            members[f"frame{t:03d}.png"] = _png(bgr)
        else:
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            members[f"frame{t:03d}.jpg"] = buf.tobytes()
    depth_meta = {"kind": "none" if rec.depth is None else rec.depth_kind, "units": rec.depth_units}
    if rec.depth is not None:
        depth = np.asarray(rec.depth, dtype=np.float32)
        if depth.shape != (T, H, W):
            raise ValueError(f"{rec.sequence}: depth shape {depth.shape} != frames {(T, H, W)}")
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        depth_meta["encoding"] = depth_encoding
        if depth_encoding == "png16":
            scale = float(depth_scale) if depth_scale else auto_png16_scale(depth)
            q = np.rint(depth.astype(np.float64) * scale)
            if q.max(initial=0) > 65535:
                raise ValueError(f"{rec.sequence}: depth up to {depth.max():.4g} does not fit 16 bits at "
                                 f"scale {scale:.6g}; pass a smaller depth_scale or use f16/f32")
            for t in range(T):
                members[f"depth{t:03d}.png"] = _png(q[t].astype(np.uint16))
            depth_meta["scale"] = scale
        else:
            members["depth.npy"] = _npy(depth.astype(np.float16 if depth_encoding == "f16" else np.float32))
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
    members["json"] = json.dumps(meta).encode()
    return members


def _need(members: dict, name: str) -> bytes:
    if name not in members:
        raise SampleError("missing_member", f"member .{name} absent")
    return members[name]


def parse_meta(members: dict) -> dict:
    try:
        meta = json.loads(_need(members, "json"))
        T, H, W = int(meta["num_frames"]), int(meta["height"]), int(meta["width"])
        if T < 1 or H < 1 or W < 1 or len(meta["frame_indices"]) != T:
            raise ValueError("num_frames/height/width/frame_indices inconsistent")
        if meta["depth"]["kind"] not in DEPTH_KINDS:
            raise ValueError(f"unknown depth kind {meta['depth']['kind']!r}")
    except SampleError:
        raise
    except Exception as exn:  # json errors, missing keys, wrong types: all one reason
        raise SampleError("bad_meta", str(exn)) from None
    return meta


def _decode_png(buf: bytes, flags: int, what: str, reason: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(buf, np.uint8), flags)
    if img is None:
        raise SampleError(reason, f"{what} does not decode")
    return img


def decode_members(members: dict, frame_slice: slice = slice(None)) -> ClipRecord:
    """Decode raw tar members into a ClipRecord (only the frames in `frame_slice`), validating everything."""
    import cv2

    meta = parse_meta(members)
    T, H, W = meta["num_frames"], meta["height"], meta["width"]
    ts = list(range(T))[frame_slice]
    ext = meta.get("frame_format", "png")
    frames = np.empty((len(ts), H, W, 3), np.uint8)
    for i, t in enumerate(ts):
        img = _decode_png(_need(members, f"frame{t:03d}.{ext}"), cv2.IMREAD_COLOR, f"frame {t}", "bad_image")
        if img.shape != (H, W, 3):
            raise SampleError("bad_shape", f"frame {t} is {img.shape}, json says {(H, W, 3)}")
        frames[i] = img[:, :, ::-1]
    depth = None
    dmeta = meta["depth"]
    if dmeta["kind"] != "none":
        depth = _decode_depth(members, dmeta, ts, T, H, W)
    mask = None
    if meta.get("has_mask"):
        mask = np.empty((len(ts), H, W), bool)
        for i, t in enumerate(ts):
            m = _decode_png(_need(members, f"mask{t:03d}.png"), cv2.IMREAD_UNCHANGED, f"mask {t}", "bad_image")
            if m.shape != (H, W):
                raise SampleError("bad_shape", f"mask {t} is {m.shape}, json says {(H, W)}")
            mask[i] = m > 0
    K = None if meta.get("K") is None else np.asarray(meta["K"], np.float64)
    poses = None if meta.get("poses") is None else np.asarray(meta["poses"], np.float64)[ts]
    if (K is not None and K.shape != (3, 3)) or (poses is not None and poses.shape != (len(ts), 4, 4)):
        raise SampleError("bad_meta", "K must be 3x3 and poses (T, 4, 4)")
    return ClipRecord(frames=frames, dataset=meta["dataset"], sequence=meta["sequence"],
                      frame_indices=[meta["frame_indices"][t] for t in ts], depth=depth, mask=mask, K=K,
                      poses=poses, depth_kind=dmeta["kind"], depth_units=dmeta.get("units", ""),
                      sample_type=meta.get("sample_type", "clip"), extra=meta.get("extra", {}))


def _decode_depth(members: dict, dmeta: dict, ts: list[int], T: int, H: int, W: int) -> np.ndarray:
    import cv2

    enc = dmeta.get("encoding")
    if enc == "png16":
        scale = float(dmeta.get("scale", 0))
        if not scale > 0:
            raise SampleError("bad_meta", f"png16 depth needs a positive scale, got {scale}")
        depth = np.empty((len(ts), H, W), np.float32)
        for i, t in enumerate(ts):
            # Decoded by hand: webdataset's image decoders silently reduce 16-bit PNGs to 8 bits.
            d = _decode_png(_need(members, f"depth{t:03d}.png"), cv2.IMREAD_UNCHANGED, f"depth {t}", "bad_depth")
            if d.dtype != np.uint16 or d.shape != (H, W):
                raise SampleError("bad_shape", f"depth {t} is {d.dtype} {d.shape}, want uint16 {(H, W)}")
            depth[i] = d.astype(np.float32) / scale
        return depth
    if enc in ("f16", "f32"):
        try:
            arr = np.load(io.BytesIO(_need(members, "depth.npy")), allow_pickle=False)
        except SampleError:
            raise
        except Exception as exn:
            raise SampleError("bad_depth", f"depth.npy does not load: {exn}") from None
        if arr.shape != (T, H, W):
            raise SampleError("bad_shape", f"depth.npy is {arr.shape}, json says {(T, H, W)}")
        depth = arr[ts].astype(np.float32)
        if not np.isfinite(depth).all():
            raise SampleError("nonfinite_depth", f"{int((~np.isfinite(depth)).sum())} NaN/Inf depth values")
        return depth
    raise SampleError("bad_meta", f"unknown depth encoding {enc!r}")
