"""Outputs of `vda-infer`, written without ever holding a whole video; where each goes: `layouts.py` (our default
layout and the published `run.py` one).

Depth maps are appended to a float32 spool file as they become final (while a running min/max is kept,
which is the exact global range by the end). Everything else is produced from the spool afterwards, under its
own progress bar, in one pass over the frames: the npz is assembled frame by frame (deflate-compressed by
default, as the published `np.savez_compressed`) alongside the per-frame folders (png16, exr, ply) and the videos
(src, vis, vis-depth; src, the side-by-side vis and the point clouds re-decode the input). The bar counts frames
once and names the output kind that takes the largest share of the time (`progress.WriteClock`). Every output goes
to a temporary name first and is renamed when complete (`vda_lightning.io`: `atomic_path` for the npz, an
`AtomicWrite` for each video and per-frame folder), so an interrupted run leaves no partial output.

No native library is given a path (output names are built from input names; OpenCV's `imwrite` crashed on a name
that is not UTF-8): PNGs are encoded in memory (`cv2.imencode`) and written by Python, EXRs are written to a Python
file object, videos through one (`viz.VideoWriter`). Inputs whose names are not valid UTF-8 are refused before
anything is written (`inference/cli.py`).
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from ..io import AtomicWrite, atomic_path
from .layouts import FOLDER_FORMATS, FORMATS, depth_only, file_name, folder_names
from .progress import WriteClock

__all__ = ["FORMATS", "DepthSpool", "write_npz", "write_outputs"]


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


def write_npz(spool: DepthSpool, path: Path, compress: bool = True, on_frame: Callable[[], None] | None = None):
    """An np.load-able npz with key `depths` (float32 (T, H, W)), streamed from the spool frame by frame.

    `compress`: deflate at zlib's default level, as the published `np.savez_compressed`; False stores the array
    as is (`np.savez`: faster to write, bigger). `on_frame` is called after each frame (progress).
    """
    with npz_frames(path, spool.count, spool.shape, compress) as write:
        for depth in spool.frames():
            write(depth)
            if on_frame is not None:
                on_frame()


@contextmanager
def npz_frames(path: Path, count: int, shape, compress: bool = True):
    """Yields `write(depth)`, called `count` times in frame order; the npz (as `write_npz`) replaces `path` when the
    block ends without an exception. Lets `write_outputs` fill the npz in the same pass as the other outputs."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (count, *shape)}
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as zf:
        with zf.open("depths.npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_2_0(out, header)
            yield lambda depth: out.write(np.ascontiguousarray(depth, dtype="<f4").tobytes())


def png16_scale(vmax: float) -> float:
    """Multiplier that maps [0, vmax] onto the 16-bit range (1 for an all-zero video)."""
    return 65535.0 / vmax if vmax > 0 else 1.0


def write_exr(path: str | os.PathLike, depth: np.ndarray):
    """One float32 channel `Z`, written through a Python file object (OpenEXR never sees the name)."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with open(path, "wb") as f:
        OpenEXR.File(header, {"Z": np.ascontiguousarray(depth, dtype=np.float32)}).write(f)


def write_png(path: str | os.PathLike, image: np.ndarray):
    """A PNG encoded in memory by OpenCV (8 or 16 bits) and written by Python (OpenCV never sees the name)."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} image as PNG")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def point_cloud(depth: np.ndarray, rgb: np.ndarray, fx: float, fy: float, cx: float | None = None,
                cy: float | None = None) -> np.ndarray:
    """Pinhole back-projection of metric depth; principal point (cx, cy), by default the image centre (w/2, h/2)
    as published `run.py`."""
    h, w = depth.shape
    cx = w / 2 if cx is None else cx
    cy = h / 2 if cy is None else cy
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    z = depth.astype(np.float32)
    pts = np.empty(h * w, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue",
                                                                                                            "u1")])
    pts["x"] = ((u - cx) / fx * z).ravel()
    pts["y"] = ((v - cy) / fy * z).ravel()
    pts["z"] = z.ravel()
    for i, c in enumerate(("red", "green", "blue")):
        pts[c] = rgb[..., i].ravel()
    return pts


def _header_text(text: str) -> str:
    """One printable ASCII line for a PLY header (a comment may hold a file name: no line break may end it)."""
    from ..trust import display

    return display(text).encode("ascii", "backslashreplace").decode("ascii")


def write_ply(path: str | os.PathLike, points: np.ndarray, comments: Iterable[str] = ()):
    props = "".join(
        f"property {'float' if points.dtype[n].kind == 'f' else 'uchar'} {n}\n" for n in points.dtype.names
    )
    notes = "".join(f"comment {_header_text(c)}\n" for c in comments)
    header = f"ply\nformat binary_little_endian 1.0\n{notes}element vertex {len(points)}\n{props}end_header\n"
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(points.tobytes())


class _Video:
    """A video output: a VideoWriter and what it shows (frames, depth, or both side by side)."""

    def __init__(self, path: Path, fps: float, show: str, kind: str = "video"):
        from ..viz import VideoWriter

        self.writer, self.show, self.kind = VideoWriter(path, fps=fps), show, kind

    def frame(self, rgb: np.ndarray | None, depth_rgb: np.ndarray) -> np.ndarray:
        if self.show == "frames":
            return rgb
        if self.show == "depth":
            return depth_rgb
        return np.concatenate([rgb, depth_rgb], axis=1)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_outputs(spool: DepthSpool, out_dir: Path, name: str, formats: Iterable[str], *, metric: bool,
                  source=None, fps: float = 30.0, focal=(470.4, 470.4), layout: str = "default",
                  grayscale: bool = False, npz_compress: bool = True, progress: bool = False,
                  camera=None) -> list[Path]:
    """Everything requested (formats of `layouts.FORMATS`), from the spool, plus a second pass over `source` for
    the frames (src, side-by-side vis, ply colours). `progress`: a tqdm bar for this writing phase.

    Point clouds use `camera` (`inference.camera.Camera`, rescaled to the depth maps' size; its numbers and where
    they came from go to each file's header and, in our layout, to `camera.json` beside the clouds; the published
    layout writes exactly run.py's files), else the pinhole `focal` with the principal point at the centre.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown output format(s) {unknown}; known: {', '.join(FORMATS)}")
    per_frame = [f for f in formats if f != "npz"]
    from .progress import WriteClock, frame_bar

    clock = WriteClock()
    written: list[Path] = []
    try:  # one pass over the frames for every output, so the bar counts each frame once
        with frame_bar(spool.count, f"{name} (writing)", progress) as bar, ExitStack() as npz:
            npz_write = None
            if "npz" in formats:
                npz_path = out_dir / file_name("npz", name, layout)
                npz_write = npz.enter_context(npz_frames(npz_path, spool.count, spool.shape, npz_compress))
            written += _per_frame_outputs(spool, out_dir, name, per_frame, metric=metric, source=source,
                                          fps=fps, focal=focal, layout=layout, grayscale=grayscale, bar=bar,
                                          camera=camera, npz_write=npz_write, clock=clock)
        if "npz" in formats:  # committed when its block closed, after the per-frame outputs
            written.append(npz_path)
    except BaseException:  # Ctrl-C or a failure: this input leaves nothing, not some of its outputs
        for path in written:
            _remove(path)
        raise
    return written


def _per_frame_outputs(spool, out_dir, name, formats, *, metric, source, fps, focal, layout, grayscale, bar,
                       camera=None, npz_write=None, clock=None):
    folders, patterns, loose = {}, {}, {}
    for fmt in (f for f in formats if f in FOLDER_FORMATS):
        folder, patterns[fmt] = folder_names(fmt, name, layout)
        if folder:
            folders[fmt] = AtomicWrite(out_dir / folder, folder=True)
        else:  # published point clouds lie in the output directory: staged in a hidden folder, moved at the end
            folders[fmt] = loose[fmt] = AtomicWrite(out_dir / f"{name}_{fmt}", folder=True)
    videos, written, moved = {}, [], []
    try:
        for fmt in (f for f in formats if f not in FOLDER_FORMATS):
            show = "frames" if fmt == "src" else "depth" if depth_only(fmt, layout) else "both"
            path = out_dir / file_name(fmt, name, layout)
            if path not in videos:
                videos[path] = _Video(path, fps, show, kind=fmt)
        if "ply" in folders:
            from .camera import Camera

            h, w = spool.shape
            camera = (camera or Camera(*focal, source="focal=")).at(h, w, getattr(source, "native_size", None))
            (folders["ply"].tmp / "camera.json").write_text(json.dumps(camera.as_dict(h, w), indent=1))
        _per_frame_pass(spool, folders, patterns, list(videos.values()), source, camera, grayscale, bar,
                        npz_write, clock or WriteClock())
        if "png16" in folders:
            sidecar = {
                "scale": png16_scale(spool.vmax),
                "decode": "value = png / scale",
                "kind": "metric_depth" if metric else "relative_disparity",
                "unit": "metre" if metric else None,
                "frames": spool.count, "min": spool.vmin, "max": spool.vmax,
            }
            (folders["png16"].tmp / "depth_scale.json").write_text(json.dumps(sidecar, indent=1, allow_nan=False))
        for path, video in videos.items():
            video.writer.close()
            written.append(path)
        for fmt, folder in folders.items():
            if fmt in loose:
                for i in range(spool.count):
                    frame = patterns[fmt].format(i=i)
                    os.replace(folder.tmp / frame, out_dir / frame)
                    moved.append(out_dir / frame)
                folder.abort()
            else:
                written.append(folder.commit())
        return written + moved
    except BaseException:
        for folder in folders.values():
            folder.abort()
        for video in videos.values():
            video.writer.abort()
        for path in written + moved:  # what this pass already committed
            _remove(path)
        raise


def _per_frame_pass(spool, folders, patterns, videos, source, camera, grayscale, bar, npz_write, clock):
    """Every output's frame i, then one bar step; the time of each output kind goes to `clock` and the bar's
    postfix names the slowest (the input's re-decode counts as `decode`, the colour map as `colorize`)."""
    from ..viz import colorize, depth_to_uint8

    needs_rgb = "ply" in folders or any(v.show != "depth" for v in videos)
    rgb_frames = iter(source) if needs_rgb else None
    scale = png16_scale(spool.vmax)
    for i, depth in enumerate(spool.frames()):
        if needs_rgb:
            with clock.timing("decode"):
                rgb = next(rgb_frames)
        else:
            rgb = None
        if npz_write is not None:
            with clock.timing("npz"):
                npz_write(depth)
        if "png16" in folders:
            with clock.timing("png16"):
                png = np.clip(np.round(depth.astype(np.float64) * scale), 0, 65535).astype(np.uint16)
                write_png(folders["png16"].tmp / patterns["png16"].format(i=i), png)
        if "exr" in folders:
            with clock.timing("exr"):
                write_exr(folders["exr"].tmp / patterns["exr"].format(i=i), depth)
        if "ply" in folders:
            with clock.timing("ply"):
                h, w = depth.shape
                cx, cy = camera.principal_point(h, w)
                write_ply(folders["ply"].tmp / patterns["ply"].format(i=i),
                          point_cloud(depth, rgb, camera.fx, camera.fy, cx, cy),
                          comments=[f"camera {camera.describe(h, w)}", "units metre"])
        if videos:
            with clock.timing("colorize"):
                if grayscale:
                    depth_rgb = np.repeat(depth_to_uint8(depth, spool.vmin, spool.vmax)[..., None], 3, axis=-1)
                else:
                    depth_rgb = colorize(depth, spool.vmin, spool.vmax)
            for video in videos:
                with clock.timing(video.kind):
                    video.writer.write(video.frame(rgb, depth_rgb))
        bar.set_postfix_str(clock.postfix(), refresh=False)
        bar.update(1)
