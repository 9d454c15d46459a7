"""Outputs of `vda-infer`, written without ever holding a whole video.

Depth maps are appended to a float32 spool file as they become final (while a running min/max is kept,
which is the exact global range by the end). Everything else is produced from the spool afterwards:
the npz is assembled from it chunk by chunk, and the per-frame folders (png16, exr, ply) and the
side-by-side mp4 are written in one more pass (the mp4 and the point clouds re-decode the input for
the colours). Every output goes to a temporary name first and is renamed when complete (`vda_lightning.io`:
`atomic_path` for the npz, an `AtomicWrite` folder for each per-frame folder).
"""
from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..io import AtomicWrite, atomic_path

FORMATS = ("npz", "png16", "exr", "vis", "ply")


class DepthSpool:
    """Append-only on-disk float32 (T, H, W) store with a running range."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = open(self.path, "wb")
        self.count, self.shape = 0, None
        self.vmin, self.vmax = np.inf, -np.inf

    def append(self, depth: np.ndarray):
        d = np.ascontiguousarray(depth, dtype=np.float32)
        if self.shape is None:
            self.shape = d.shape
        elif d.shape != self.shape:
            raise ValueError(f"depth map {d.shape} differs from the first {self.shape}")
        self._file.write(d.tobytes())
        self.count += 1
        self.vmin, self.vmax = min(self.vmin, float(d.min())), max(self.vmax, float(d.max()))

    def close(self):
        self._file.close()

    def frames(self) -> Iterator[np.ndarray]:
        n = int(np.prod(self.shape))
        with open(self.path, "rb") as f:  # plain reads, not a memmap: pages do not pile up in RSS
            for _ in range(self.count):
                yield np.fromfile(f, dtype=np.float32, count=n).reshape(self.shape)

    def remove(self):
        self._file.close()
        self.path.unlink(missing_ok=True)


def write_npz(spool: DepthSpool, path: Path, chunk: int = 1 << 24):
    """An np.load-able npz with key `depths` (float32 (T, H, W)), streamed from the spool."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (spool.count, *spool.shape)}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("depths.npy", "w", force_zip64=True) as out, open(spool.path, "rb") as src:
            np.lib.format.write_array_header_2_0(out, header)
            shutil.copyfileobj(src, out, chunk)


def png16_scale(vmax: float) -> float:
    """Multiplier that maps [0, vmax] onto the 16-bit range (1 for an all-zero video)."""
    return 65535.0 / vmax if vmax > 0 else 1.0


def write_exr(path: str, depth: np.ndarray):
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"Z": np.ascontiguousarray(depth, dtype=np.float32)}).write(path)


def point_cloud(depth: np.ndarray, rgb: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Pinhole back-projection of metric depth (principal point at the image centre, as published)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    z = depth.astype(np.float32)
    pts = np.empty(h * w, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue",
                                                                                                            "u1")])
    pts["x"] = ((u - w / 2) / fx * z).ravel()
    pts["y"] = ((v - h / 2) / fy * z).ravel()
    pts["z"] = z.ravel()
    for i, c in enumerate(("red", "green", "blue")):
        pts[c] = rgb[..., i].ravel()
    return pts


def write_ply(path: str, points: np.ndarray):
    props = "".join(
        f"property {'float' if points.dtype[n].kind == 'f' else 'uchar'} {n}\n" for n in points.dtype.names
    )
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n{props}end_header\n"
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(points.tobytes())


def write_outputs(spool: DepthSpool, out_dir: Path, name: str, formats: Iterable[str], *, metric: bool,
                  source=None, fps: float = 30.0, focal=(470.4, 470.4)) -> list[Path]:
    """Everything requested, from the spool (and a second pass over `source` for vis/ply colours)."""
    formats = list(formats)
    written: list[Path] = []
    if "npz" in formats:
        write_npz(spool, out_dir / f"{name}_depths.npz")
        written.append(out_dir / f"{name}_depths.npz")
    folders = {f: AtomicWrite(out_dir / f"{name}_{f}", folder=True) for f in ("png16", "exr", "ply") if f in formats}
    video = None
    if "vis" in formats:
        from ..viz import VideoWriter

        video = VideoWriter(out_dir / f"{name}_vis.mp4", fps=fps)
    try:
        _per_frame_pass(spool, folders, video, source, focal)
        if "png16" in folders:
            sidecar = {
                "scale": png16_scale(spool.vmax),
                "decode": "value = png / scale",
                "kind": "metric_depth" if metric else "relative_disparity",
                "unit": "metre" if metric else None,
                "frames": spool.count, "min": spool.vmin, "max": spool.vmax,
            }
            (folders["png16"].tmp / "depth_scale.json").write_text(json.dumps(sidecar, indent=1))
    except BaseException:
        for folder in folders.values():
            folder.abort()
        if video is not None:
            video.abort()
        raise
    for _f, folder in folders.items():
        folder.commit()
        written.append(folder.path)
    if video is not None:
        video.close()
        written.append(video.path)
    return written


def _per_frame_pass(spool, folders, video, source, focal):
    if not folders and video is None:
        return
    from ..viz import colorize, side_by_side

    needs_rgb = video is not None or "ply" in folders
    rgb_frames = iter(source) if needs_rgb else None
    scale = png16_scale(spool.vmax)
    for i, depth in enumerate(spool.frames()):
        rgb = next(rgb_frames) if needs_rgb else None
        if "png16" in folders:
            png = np.clip(np.round(depth.astype(np.float64) * scale), 0, 65535).astype(np.uint16)
            cv2.imwrite(str(folders["png16"].tmp / f"{i:06d}.png"), png)
        if "exr" in folders:
            write_exr(str(folders["exr"].tmp / f"{i:06d}.exr"), depth)
        if "ply" in folders:
            write_ply(str(folders["ply"].tmp / f"{i:06d}.ply"), point_cloud(depth, rgb, *focal))
        if video is not None:
            video.write(side_by_side(rgb, colorize(depth, spool.vmin, spool.vmax)))
