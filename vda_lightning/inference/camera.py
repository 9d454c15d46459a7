"""The pinhole camera behind `vda infer --save ply` (and a canonical-camera model's depth): where its numbers come
from, and how they follow the frames' resize.

* `--focal-length-x/-y` (pixels of the frames as processed, i.e. after `--max-res`; principal point at the image
  centre): the published `run.py` / `depth_to_pointcloud.py` convention, used as given.
* `--intrinsics FILE`: the camera of the input at its own resolution (or at the `width`/`height` the file states),
  rescaled to the processed frames (pixel centres at integer coordinates: u -> (u + 0.5) s - 0.5). FILE is a
  3x3 (or 4x4) matrix as text or `.npy` (the `vda shard folders` K.txt convention), or JSON
  {"fx", "fy", "cx", "cy"[, "width", "height"]} or {"K": [[...]][, "width", "height"]}.
* neither: fx = fy = 470.4 px, the published scripts' default — not this camera's; the output says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

PUBLISHED_FOCAL = 470.4  # published run.py / depth_to_pointcloud.py default


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


def _matrix(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    return np.loadtxt(path, dtype=np.float64, ndmin=2)


def read_intrinsics(path: str | Path) -> Camera:
    path = Path(path)
    if not path.is_file():
        raise CameraError(f"{path}: intrinsics file not found")
    size = None
    try:
        if path.suffix == ".json":
            doc = json.loads(path.read_text())
            if "K" in doc:
                K = np.asarray(doc["K"], dtype=np.float64)
            else:
                K = np.array([[doc["fx"], 0, doc["cx"]], [0, doc["fy"], doc["cy"]], [0, 0, 1]], dtype=np.float64)
            if "width" in doc or "height" in doc:
                size = (int(doc["height"]), int(doc["width"]))
        else:
            K = _matrix(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        detail = f"missing key {e}" if isinstance(e, KeyError) else str(e).splitlines()[0][:200]
        raise CameraError(f"{path}: not a readable intrinsics file ({detail})") from None
    if K.shape not in ((3, 3), (4, 4)) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise CameraError(f"{path}: intrinsics must be a 3x3 or 4x4 matrix with positive fx, fy; got shape "
                          f"{K.shape}")
    return Camera(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), size,
                  source=f"--intrinsics {path}", follows_resize=True)


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
    fx = fx if fx is not None else fy
    fy = fy if fy is not None else fx
    if fx <= 0 or fy <= 0:
        raise CameraError(f"--focal-length-x/-y must be positive, got {fx}, {fy}")
    return Camera(float(fx), float(fy), source="--focal-length-x/-y")
