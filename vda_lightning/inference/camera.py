"""The pinhole camera behind `vda infer --save ply` (and a canonical-camera model's depth): where its numbers come
from, and how they follow the frames' resize.

* `--focal-length-x/-y` (pixels of the frames as processed, i.e. after `--max-res`; principal point at the image
  centre): the published `run.py` / `depth_to_pointcloud.py` convention, used as given.
* `--intrinsics FILE`: the camera of the input at its own resolution (or at the `width`/`height` the file states),
  rescaled to the processed frames (pixel centres at integer coordinates: u -> (u + 0.5) s - 0.5). FILE is a
  3x3 (or 4x4) matrix as text or `.npy` (the `vda shard folders` K.txt convention), or JSON
  {"fx", "fy", "cx", "cy"[, "width", "height"]} or {"K": [[...]][, "width", "height"]}.
* neither: fx = fy = 470.4 px, the published scripts' default — not this camera's; the output says so.

`infer_video(..., camera=)` takes the same descriptions (`camera_from_argument`). A canonical-camera metric model
(`ModelConfig.canonical_focal`) needs one of them to give metres (`missing_camera`, `metres_converter`).

The intrinsics file comes from outside and is read through the trust boundary (docs/reliability.md): a regular
file of at most MAX_INTRINSICS_BYTES read by Python; `.npy` through `trust.load_npy` (header checked, no pickles);
JSON through `trust.parse_json` and a schema (finite numbers, fx, fy > 0, width/height positive integers, both
or neither); text parsed from the bytes. Whatever the form, the matrix must be 3x3 or 4x4 of finite numbers with
fx, fy > 0. Every refusal is one `CameraError` line naming the file.
"""
from __future__ import annotations

import functools
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..models.configs import canonical_depth_to_metres
from ..trust import display, load_npy, parse_json, read_bytes, validate

PUBLISHED_FOCAL = 470.4  # published run.py / depth_to_pointcloud.py default
MAX_INTRINSICS_BYTES = 1 << 20  # a camera matrix is a few hundred bytes; no reason to read more
MAX_PIXEL_VALUE = 1e9  # |fx|, |fy|, |cx|, |cy| in pixels: far above any lens (1e308 overflowed when rescaled)


class CameraError(ValueError):
    """A bad intrinsics file or option; the message names the file and the cause."""


@dataclass(frozen=True)
class Camera:
    fx: float
    fy: float
    cx: float | None = None             # None: the image centre (w/2, h/2), as published
    cy: float | None = None
    size: tuple[int, int] | None = None  # (height, width) the numbers refer to (None: see `follows_resize`)
    source: str = "default"
    follows_resize: bool = False         # True: a file's camera of the input at its own size, rescaled with it
    default: bool = False                # True: nobody described the camera (the published focal length)

    def at(self, height: int, width: int, native: tuple[int, int] | None = None) -> Camera:
        """This camera for frames of (height, width): rescaled from `size` (or, for a file's camera without one,
        from the input's `native` size); focal lengths given on the command line are used as they are."""
        ref = self.size or (native if self.follows_resize else None)
        if ref is None or tuple(ref) == (height, width):
            return replace(self, size=(height, width))
        sy, sx = height / ref[0], width / ref[1]
        cx = None if self.cx is None else (self.cx + 0.5) * sx - 0.5
        cy = None if self.cy is None else (self.cy + 0.5) * sy - 0.5
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=cx, cy=cy, size=(height, width),
                       source=f"{self.source}, rescaled from {ref[1]}x{ref[0]} to {width}x{height}")

    def principal_point(self, height: int, width: int) -> tuple[float, float]:
        return (width / 2 if self.cx is None else self.cx), (height / 2 if self.cy is None else self.cy)

    def describe(self, height: int, width: int) -> str:
        cx, cy = self.principal_point(height, width)
        return f"fx {self.fx:.2f}, fy {self.fy:.2f}, cx {cx:.2f}, cy {cy:.2f} px ({self.source})"

    def as_dict(self, height: int, width: int) -> dict:
        cx, cy = self.principal_point(height, width)
        return {"fx": self.fx, "fy": self.fy, "cx": cx, "cy": cy, "width": width, "height": height,
                "source": self.source}


@functools.lru_cache(maxsize=1)
def _schemas():
    """(pinhole form, matrix form) of a JSON intrinsics file; pydantic is imported on first use."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field

    finite = Annotated[float, Field(allow_inf_nan=False)]
    focal = Annotated[float, Field(gt=0, allow_inf_nan=False)]
    side = Annotated[int, Field(ge=1)]
    row = Annotated[list[finite], Field(min_length=3, max_length=4)]

    class Sized(BaseModel):
        model_config = ConfigDict(extra="ignore")  # e.g. the "source" of the camera.json we write beside clouds
        width: side | None = None
        height: side | None = None

    class Pinhole(Sized):
        fx: focal
        fy: focal
        cx: finite
        cy: finite

    class Matrix(Sized):
        K: Annotated[list[row], Field(min_length=3, max_length=4)]

    return Pinhole, Matrix


def _json_camera(raw: bytes, what: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    doc = parse_json(raw, what, error=CameraError)
    if not isinstance(doc, dict):
        raise CameraError(f"{what}: intrinsics JSON must be an object {{fx, fy, cx, cy}} or {{K}}, got "
                          f"{type(doc).__name__}")
    pinhole, matrix = _schemas()
    cam = validate(matrix if "K" in doc else pinhole, doc, what, error=CameraError)
    if (cam.width is None) != (cam.height is None):
        raise CameraError(f"{what}: intrinsics JSON gives {'width' if cam.height is None else 'height'} without "
                          f"{'height' if cam.height is None else 'width'}")
    size = None if cam.width is None else (cam.height, cam.width)
    if "K" in doc:
        if len({len(r) for r in cam.K}) != 1:
            raise CameraError(f"{what}: K: rows of different lengths {[len(r) for r in cam.K]}")
        return np.asarray(cam.K, dtype=np.float64), size
    return np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]], dtype=np.float64), size


def _text_matrix(raw: bytes, what: str) -> np.ndarray:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CameraError(f"{what}: not a readable intrinsics file (not UTF-8 text, .npy or .json)") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file: numpy warns, the shape check below says it
            return np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2)
    except (ValueError, TypeError, IndexError, OverflowError) as e:
        detail = " ".join(str(e).split())[:160]
        raise CameraError(f"{what}: not a readable intrinsics file ({detail})") from None


def check_matrix(K: np.ndarray, what: str) -> np.ndarray:
    """`K` as float64 if it is a 3x3 or 4x4 matrix of finite numbers with fx, fy > 0, else `CameraError`."""
    K = np.asarray(K)
    if K.shape not in ((3, 3), (4, 4)) or K.dtype.kind not in "fiu":
        raise CameraError(f"{what}: intrinsics must be a 3x3 or 4x4 matrix of numbers; got shape {K.shape} "
                          f"({K.dtype})")
    K = K.astype(np.float64)
    if not np.isfinite(K).all():
        raise CameraError(f"{what}: intrinsics hold NaN/Inf entries")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        raise CameraError(f"{what}: intrinsics must have positive fx, fy; got fx {fx:g}, fy {fy:g}")
    if max(fx, fy, abs(cx), abs(cy)) > MAX_PIXEL_VALUE:  # rescaled to the frames, they would overflow
        raise CameraError(f"{what}: intrinsics fx {fx:g}, fy {fy:g}, cx {cx:g}, cy {cy:g} px: more than "
                          f"{MAX_PIXEL_VALUE:g} px is no camera")
    return K


def read_intrinsics(path: str | Path) -> Camera:
    """The camera of an intrinsics file (module docstring), or `CameraError` naming the file."""
    path = Path(path)
    what = display(path)
    if not path.exists():
        raise CameraError(f"{what}: intrinsics file not found")
    raw = read_bytes(path, "intrinsics file", MAX_INTRINSICS_BYTES, error=CameraError)
    size = None
    if path.suffix == ".json":
        K, size = _json_camera(raw, what)
    elif path.suffix == ".npy":
        K = load_npy(raw, what, error=CameraError)
    else:
        K = _text_matrix(raw, what)
    K = check_matrix(K, what)
    return Camera(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), size,
                  source=f"--intrinsics {what}", follows_resize=True)


def camera_from_options(fx: float | None, fy: float | None, intrinsics: str | Path | None) -> Camera:
    """The camera the command line describes (module docstring)."""
    if intrinsics is not None:
        if fx is not None or fy is not None:
            raise CameraError("--intrinsics and --focal-length-x/-y both describe the camera: give one of them")
        return read_intrinsics(intrinsics)
    if fx is None and fy is None:
        return Camera(PUBLISHED_FOCAL, PUBLISHED_FOCAL, default=True,
                      source="the published default focal length, not this camera's: pass --focal-length-x/-y "
                             "or --intrinsics")
    return _focal_camera(fx if fx is not None else fy, fy if fy is not None else fx, "--focal-length-x/-y")


def _focal_camera(fx: float, fy: float, what: str) -> Camera:
    """Focal lengths in pixels of the frames as processed, principal point at the centre."""
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):  # nan wrote all-NaN point clouds
        raise CameraError(f"{what} must be finite and positive, got {fx}, {fy}")
    return Camera(float(fx), float(fy), source=what)


def camera_from_argument(camera) -> Camera:
    """The camera `infer_video(..., camera=)` describes, read as `vda infer` reads its options:

    * a number fx (fy = fx) or a pair (fx, fy): as `--focal-length-x/-y`, pixels of the frames as processed;
    * a 3x3 (or 4x4) K, or the path of an intrinsics file: as `--intrinsics`, the camera of the input at its own
      resolution, rescaled with `max_res` (frames given as arrays are that resolution);
    * a `Camera`, as it is; None: the published default focal length, as with neither option.
    """
    if camera is None:
        return camera_from_options(None, None, None)
    if isinstance(camera, Camera):
        return camera
    if isinstance(camera, str | os.PathLike):
        return read_intrinsics(camera)
    try:
        values = np.asarray(camera)
    except (ValueError, TypeError):  # ragged rows
        values = np.asarray(None)
    if values.dtype.kind not in "fiu":
        raise CameraError(f"camera: focal lengths (fx or (fx, fy)), a 3x3 K or an intrinsics file, got "
                          f"{type(camera).__name__} {str(camera)[:80]}")
    if values.shape in ((), (1,), (2,)):
        fx, fy = (float(v) for v in np.broadcast_to(values.reshape(-1), (2,)))
        return _focal_camera(fx, fy, "camera= focal lengths")
    K = check_matrix(values, "camera")
    return Camera(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), source="camera= K",
                  follows_resize=True)


def missing_camera(config, camera: Camera) -> str | None:
    """Why a canonical-camera model cannot give metres with `camera` (nobody described the camera), else None."""
    canonical = getattr(config, "canonical_focal", None)
    if canonical and camera.default:
        return f"predicts depth for a canonical camera (focal length {canonical:g} px)"
    return None


def metres_converter(config, camera: Camera, source=None) -> Callable[[np.ndarray], np.ndarray] | None:
    """For a canonical-camera model (`config.canonical_focal`): depth map -> metres for `camera` at the map's size
    (a file's camera rescaled from `source.native_size`, the input's size before `max_res`). None for any other
    model, whose depth is used as it is."""
    canonical = getattr(config, "canonical_focal", None)
    if not canonical:
        return None

    def convert(depth: np.ndarray) -> np.ndarray:
        fx = camera.at(*depth.shape, getattr(source, "native_size", None)).fx
        return canonical_depth_to_metres(depth, fx, canonical)

    return convert
