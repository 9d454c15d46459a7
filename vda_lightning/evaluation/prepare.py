"""vda prepare-benchmark (alias vda-prepare-benchmark): raw dataset layouts → the published benchmark layout.

Writes `<out>/<dataset>/...` and the benchmark JSONs:
  vda prepare-benchmark kitti   --raw KITTI_RAW --depth KITTI_DEPTH/val --out ROOT
  vda prepare-benchmark bonn    --raw BONN_RGBD --out ROOT
  vda prepare-benchmark scannet --raw SCANNET_EXPORT --out ROOT      (colour exported at 640x480)
  vda prepare-benchmark nyuv2   --raw NYU_SCENES --out ROOT          (rgb/<n>.jpg + depth/<n>.png per scene)
  vda prepare-benchmark sintel  --raw MPI_SINTEL/training --out ROOT (clean/, depth/*.dpt, camdata_left/)

Same file names, crops, frame ranges and JSON entries as the published extractors
(`benchmark/dataset_extract/dataset_extract_<dataset>.py`), with their bugs fixed, each on purpose:
* Colour: the published extractors read with PIL (RGB) and write with `cv2.imwrite` (expects BGR), so their files
  are R/B-swapped. We read and write with OpenCV: stored images have true colours.
* NYUv2: the published script crashes (undefined function) and would have written the RGB image as "depth" with a
  .jpg name; we copy the depth PNG as `depth/<n>.png`.
* Sintel: the published script truncates raw metres to uint16 while its JSON factor assumes ×65535/650; we store
  round(depth · 65535/650) (clipped at 65535 = 650 m) so the factor is right, and write `<seq>/clean`,
  `<seq>/depth` where its own JSON generator looks.
* Sequences are processed in sorted order and written to the JSON sorted (published: file-system order).
Frames are paired by natural sort order (Bonn's RGB and depth time stamps differ, as in the published pairing).

Trust (docs/reliability.md): raw files are read by Python through `vda_lightning.trust` (regular files only, sizes
from headers checked against the caps, OpenCV never sees a file name: it crashes on names that are not UTF-8);
images are encoded with `cv2.imencode` and written atomically; a raw name that is not valid UTF-8 or holds a
control character is refused before anything of its sequence is written (it would become an output name and a
JSON entry). Cameras are checked before they are written: K finite with positive focal lengths, a pose finite
with an orthonormal rotation of determinant +1 (within 1e-4). ScanNet marks untracked frames with a pose of
-inf: such a frame is written with `"pose": null` (counted in a note), which the accuracy evaluation ignores and
the TAE refuses in one line.
"""
from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..cli import errors
from ..cli.options import HelpFormatter
from ..io import ReadError, list_files, read_depth, write_bytes_atomic, write_json_atomic
from ..io.benchmarks import BENCHMARKS, TAE_SETTINGS, BenchmarkError
from ..io.depth import DPT_TAG
from ..trust import (
    check_image_bytes,
    check_name,
    display,
    max_array_bytes,
    max_json_bytes,
    read_bytes,
    read_image,
)
from .cut3r_splits import CUT3R_SPLITS
from .prepare_cut3r import copy_file as _copy
from .prepare_cut3r import missing_sequences, prepare_sintel_frames, write_cut3r_index

PROG = "vda-prepare-benchmark"
# OpenCV is imported where images are read or written: `vda prepare-benchmark --help` starts without it.
SINTEL_FACTOR = 65535 / 650


def _named(paths: list[Path], kind: str) -> list[Path]:
    """`paths` after every name passed `trust.check_name` (names become output names and JSON entries)."""
    for path in paths:
        check_name(path, kind, BenchmarkError)
    return paths


def _listing(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise BenchmarkError(f"{display(folder)}: expected folder not found")
    files = list_files(folder, suffixes)
    if not files:
        raise BenchmarkError(f"{display(folder)}: no {'/'.join(suffixes)} files")
    return _named(files, "frame file")


def _subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BenchmarkError(f"{display(folder)}: raw dataset folder not found")
    dirs = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)
    if not dirs:
        raise BenchmarkError(f"{display(folder)}: no sequence folders")
    return _named(dirs, "sequence folder")


def _read_color(path: Path) -> np.ndarray:
    import cv2

    # BGR in memory; the encoder below expects BGR: colours kept
    return read_image(path, cv2.IMREAD_COLOR, "image", error=BenchmarkError)


def _write_image(path: Path, img: np.ndarray) -> None:
    """`img` encoded by its file suffix (`cv2.imencode`, as `cv2.imwrite` would) and written atomically."""
    import cv2

    ok, buf = cv2.imencode(path.suffix, img)
    if not ok:
        raise BenchmarkError(f"{display(path)}: could not encode the image as {path.suffix}")
    write_bytes_atomic(path, buf.tobytes())


def _image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from an image file's header, None if there is no file; nothing is decoded."""
    if not path.exists():
        return None
    return check_image_bytes(read_bytes(path, "depth image", max_array_bytes(), BenchmarkError), display(path),
                             BenchmarkError)


def read_matrix(path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    """A whitespace-separated table of numbers (ScanNet's pose and intrinsics .txt) of exactly `shape`."""
    raw = read_bytes(path, what, max_json_bytes(), BenchmarkError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's "no data" warning: an empty file is refused below
            m = np.loadtxt(io.StringIO(raw.decode("utf-8")), dtype=np.float64, ndmin=2)
    except (UnicodeDecodeError, ValueError) as e:
        raise BenchmarkError(f"{display(path)}: {what} is not a table of numbers "
                             f"({' '.join(str(e).split())[:100]})") from None
    if m.shape != shape:
        raise BenchmarkError(f"{display(path)}: {what} is {m.shape[0]}x{m.shape[1] if m.ndim > 1 else 0}, "
                             f"expected {shape[0]}x{shape[1]}")
    return m


def check_intrinsics(K: np.ndarray, where: str) -> np.ndarray:
    """K (3x3 or 4x4) finite with positive focal lengths, else one line naming `where`."""
    if not np.isfinite(K).all():
        raise BenchmarkError(f"{where}: K holds NaN/Inf")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise BenchmarkError(f"{where}: K's focal lengths must be positive, got fx {K[0, 0]:g}, fy {K[1, 1]:g}")
    return K


def check_pose(pose: np.ndarray, where: str, tol: float = 1e-4) -> np.ndarray:
    """A 4x4 rigid transform: finite, last row (0, 0, 0, 1), rotation orthonormal with det +1 within `tol`."""
    if not np.isfinite(pose).all():
        raise BenchmarkError(f"{where}: pose holds NaN/Inf")
    R = pose[:3, :3]
    det = float(np.linalg.det(R))
    if (np.abs(R.T @ R - np.eye(3)).max() > tol or abs(det - 1) > tol
            or np.abs(pose[3] - (0, 0, 0, 1)).max() > tol):
        raise BenchmarkError(f"{where}: pose is not a rigid camera transform (rotation det {det:.4g}, "
                             "expected an orthonormal rotation with det +1 and a last row 0 0 0 1)")
    return pose


def _even_crop(img: np.ndarray) -> np.ndarray:
    return img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]


def write_index(dataset_dir: Path, dataset: str, json_name: str, frames: tuple, image_dir: str,
                factor: float, extras=None) -> Path:
    """The JSON index: per sequence (sorted), natural-sorted images and depths paired by index, sliced."""
    start, stop, step = frames
    data = []
    for seq in _subdirs(dataset_dir):
        images = _listing(seq / image_dir, (".png", ".jpg"))[start:stop:step]
        depths = _listing(seq / "depth", (".png",))[start:stop:step]
        if len(images) != len(depths):
            raise BenchmarkError(f"{seq}: {len(images)} images but {len(depths)} depth maps")
        entries = []
        for image, depth in zip(images, depths):  # names were checked by _listing (trust.check_name)
            entry = {"image": image.relative_to(dataset_dir).as_posix(),
                     "gt_depth": depth.relative_to(dataset_dir).as_posix(), "factor": factor}
            if extras is not None:
                entry.update(extras(seq, image))
            entries.append(entry)
        data.append({seq.name: entries})
    path = dataset_dir / json_name
    write_json_atomic(path, {dataset: data})
    untracked = sum(1 for seq in data for entries in seq.values() for e in entries if e.get("pose", 0) is None)
    if untracked:
        print(f"note: {display(path)}: {untracked} frame(s) without a tracked pose (-inf in the dataset) are written "
              'with "pose": null; the TAE refuses them', file=sys.stderr)
    return path


def _indices_for(dataset: str) -> list[tuple[str, tuple]]:
    return [(s.json_name, s.json_frames) for s in BENCHMARKS.values() if s.dataset == dataset]


# --------------------------------------------------------------------------------------------- datasets

def _protocol_indexes(dst: Path, dataset: str, image_dir: str, factor: float, protocol: str) -> list[Path]:
    """The vda protocol's indexes (`protocol` vda or all) and the cut3r split's (cut3r or all) over `dst`."""
    paths = [write_index(dst, dataset, name, frames, image_dir, factor) for name, frames in _indices_for(dataset)
             ] if protocol != "cut3r" else []
    if protocol != "vda":
        paths.append(write_cut3r_index(dst, CUT3R_SPLITS[dataset], required=protocol == "cut3r"))
    return [p for p in paths if p is not None]


def prepare_kitti(raw: Path, depth_root: Path, out: Path, protocol: str = "all") -> list[Path]:
    """KITTI raw (`<date>/<drive>/image_02/data/*.png`) + depth annotations (`<drive>/proj_depth/groundtruth/
    image_02/*.png`): every annotated drive, whole sequence; images cropped to even H, W. The cut3r split lists
    every drive's first 110 annotated frames (its images are these even-cropped ones: a row or column less than
    the family's, which only a model run here sees; predictions scored with --predictions are unaffected)."""
    dst = out / "kitti"
    for seq in tqdm(_subdirs(depth_root), desc="kitti", unit="seq"):
        for depth in _listing(seq / "proj_depth/groundtruth/image_02", (".png",)):
            image = raw / seq.name[:10] / seq.name / "image_02/data" / depth.name
            _write_image(dst / seq.name / "rgb" / depth.name, _even_crop(_read_color(image)))
            _copy(depth, dst / seq.name / "depth" / depth.name)
    return _protocol_indexes(dst, "kitti", "rgb", 256.0, protocol)


def prepare_bonn(raw: Path, out: Path, protocol: str = "all") -> list[Path]:
    """Bonn RGB-D Dynamic (`<seq>/rgb/*.png`, `<seq>/depth/*.png`): every sequence; even crop. The cut3r split
    lists its five sequences, frames [30:140]."""
    dst = out / "bonn"
    missing = missing_sequences(raw, CUT3R_SPLITS["bonn"]) if protocol == "cut3r" else []
    if missing:  # before anything is written
        raise BenchmarkError(f"{display(raw)} lacks {len(missing)} of the cut3r split's "
                             f"{len(CUT3R_SPLITS['bonn'].sequences)} sequences ({', '.join(missing[:3])}, ...)")
    for seq in tqdm(_subdirs(raw), desc="bonn", unit="seq"):
        images, depths = _listing(seq / "rgb", (".png",)), _listing(seq / "depth", (".png",))
        if len(images) != len(depths):
            raise BenchmarkError(f"{seq}: {len(images)} rgb frames but {len(depths)} depth frames")
        for image, depth in zip(images, depths):
            _write_image(dst / seq.name / "rgb" / image.name, _even_crop(_read_color(image)))
            _copy(depth, dst / seq.name / "depth" / depth.name)
    return _protocol_indexes(dst, "bonn", "rgb", 5000.0, protocol)


def _scannet_extras(seq: Path, image: Path) -> dict:
    """K and pose of one ScanNet frame; a pose of -inf (ScanNet's mark of an untracked frame) becomes None."""
    k_path, pose_path = seq / "intrinsic" / "intrinsic_depth.txt", seq / "pose" / (image.stem + ".txt")
    K = check_intrinsics(read_matrix(k_path, (4, 4), "intrinsics"), display(k_path))
    pose = read_matrix(pose_path, (4, 4), "pose")
    if np.isinf(pose).any() and not np.isnan(pose).any():
        return {"K": K.tolist(), "pose": None}
    return {"K": K.tolist(), "pose": check_pose(pose, display(pose_path)).tolist()}


def prepare_scannet(raw: Path, out: Path, max_scenes: int = 100, max_frames: int = 510) -> list[Path]:
    """ScanNet export (`<scene>/color/<n>.jpg` at 640x480, `depth/<n>.png`, `pose/<n>.txt`,
    `intrinsic/intrinsic_depth.txt`): first 100 scenes, first 510 frames; `color/` cropped [8:-8, 11:-11],
    `color_origin/` uncropped (for TAE); every JSON entry carries K and pose, like the published one."""
    dst = out / "scannet"
    for seq in tqdm(_subdirs(raw)[:max_scenes], desc="scannet", unit="seq"):
        images = _listing(seq / "color", (".jpg",))[:max_frames]  # natural order: 9.jpg before 10.jpg
        for image in images:
            img = _read_color(image)
            depth = seq / "depth" / (image.stem + ".png")
            depth_shape = _image_size(depth)
            if depth_shape is not None and img.shape[:2] != depth_shape:
                raise BenchmarkError(f"{display(image)}: colour is {img.shape[1]}x{img.shape[0]} but depth is "
                                     f"{depth_shape[1]}x{depth_shape[0]}; export colour at depth resolution")
            _write_image(dst / seq.name / "color" / image.name, img[8:-8, 11:-11])
            _copy(image, dst / seq.name / "color_origin" / image.name)  # byte copy: no JPEG re-encode
            _copy(depth, dst / seq.name / "depth" / depth.name)
            _scannet_extras(seq, image)  # the raw camera checked, errors naming the raw file, before its copy
            _copy(seq / "pose" / (image.stem + ".txt"), dst / seq.name / "pose" / (image.stem + ".txt"))
        _copy(seq / "intrinsic" / "intrinsic_depth.txt", dst / seq.name / "intrinsic" / "intrinsic_depth.txt")
    paths = [write_index(dst, "scannet", name, frames, "color", 1000.0, _scannet_extras)
             for name, frames in _indices_for("scannet")]
    tae = TAE_SETTINGS["scannet"]
    paths.append(write_index(dst, "scannet", tae.json_names[0], tae.json_frames, "color_origin", 1000.0,
                             _scannet_extras))
    return paths


def prepare_nyuv2(raw: Path, out: Path) -> list[Path]:
    """NYUv2 scenes extracted to `<scene>/rgb/<n>.jpg` + `<scene>/depth/<n>.png` (depth ×6000, 640x480):
    rgb cropped [45:471, 41:601]; depth copied uncropped (the GT crop happens at evaluation)."""
    dst = out / "nyuv2"
    for seq in tqdm(_subdirs(raw), desc="nyuv2", unit="seq"):
        for image in _listing(seq / "rgb", (".jpg",)):
            _write_image(dst / seq.name / "rgb" / image.name, _read_color(image)[45:471, 41:601])
            _copy(seq / "depth" / (image.stem + ".png"), dst / seq.name / "depth" / (image.stem + ".png"))
    return [write_index(dst, "nyuv2", name, frames, "rgb", 6000.0) for name, frames in _indices_for("nyuv2")]


SINTEL_CAM_BYTES = 4 + 9 * 8 + 12 * 8  # float32 tag, K 3x3 float64, world-to-camera 3x4 float64 (Sintel SDK)


def read_sintel_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K 3x3, camera-to-world 4x4) from a Sintel .cam file (world-to-camera 3x4 stored, as the Sintel SDK's
    `cam_read` reads it). Read whole by Python, its length and tag checked before any number is taken from it;
    K and the pose are checked (`check_intrinsics`, `check_pose`) before they are written anywhere."""
    raw = read_bytes(path, "camera file", SINTEL_CAM_BYTES, BenchmarkError)
    if len(raw) != SINTEL_CAM_BYTES or np.frombuffer(raw[:4], "<f4")[0] != np.float32(DPT_TAG):
        raise BenchmarkError(f"{display(path)}: not a Sintel .cam file ({len(raw)} bytes, expected "
                             f"{SINTEL_CAM_BYTES} starting with the tag {DPT_TAG})")
    K = np.frombuffer(raw[4:76], "<f8").reshape(3, 3).copy()
    extrinsic = np.eye(4)
    extrinsic[:3] = np.frombuffer(raw[76:], "<f8").reshape(3, 4)
    check_intrinsics(K, display(path))
    check_pose(extrinsic, display(path))
    return K, np.linalg.inv(extrinsic)


def prepare_sintel(raw: Path, out: Path, protocol: str = "all") -> list[Path]:
    """MPI-Sintel training (`clean/<seq>/*.png`, `depth/<seq>/*.dpt`, optional `camdata_left/<seq>/*.cam`; the
    cut3r split also `final/<seq>/*.png`: its 14 sequences, the final pass and the raw .dpt depth)."""
    paths = []
    split = CUT3R_SPLITS["sintel"]
    if protocol != "vda" and prepare_sintel_frames(raw, out, split, required=protocol == "cut3r"):
        paths.append(write_cut3r_index(out / "sintel", split, required=True))
    if protocol == "cut3r":
        return paths
    return _prepare_sintel_vda(raw, out) + paths


def _prepare_sintel_vda(raw: Path, out: Path) -> list[Path]:
    dst = out / "sintel"
    cams = {}
    for seq in tqdm(_subdirs(raw / "clean"), desc="sintel", unit="seq"):
        for image in _listing(seq, (".png",)):
            _copy(image, dst / seq.name / "clean" / image.name)
            depth = read_depth(raw / "depth" / seq.name / (image.stem + ".dpt"))
            raw16 = np.clip(np.round(depth.astype(np.float64) * SINTEL_FACTOR), 0, 65535).astype(np.uint16)
            _write_image(dst / seq.name / "depth" / (image.stem + ".png"), raw16)
            cam = raw / "camdata_left" / seq.name / (image.stem + ".cam")
            if cam.exists():  # read_sintel_cam refuses anything but a regular file
                K, pose = read_sintel_cam(cam)
                cams[(seq.name, image.stem)] = {"K": K.tolist(), "pose": pose.tolist()}
    spec = BENCHMARKS["sintel"]
    return [write_index(dst, "sintel", spec.json_name, spec.json_frames, "clean", SINTEL_FACTOR,
                        lambda seq, image: cams.get((seq.name, image.stem), {}))]


# --------------------------------------------------------------------------------------------- command

def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0], formatter_class=HelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    sub = p.add_subparsers(dest="dataset", required=True)
    for name in ("kitti", "bonn", "scannet", "nyuv2", "sintel"):
        s = sub.add_parser(name, help=f"{name}: raw layout -> {name}/ + its benchmark JSONs",
                           formatter_class=HelpFormatter)
        s.add_argument("--raw", type=Path, required=True, help="raw dataset folder")
        s.add_argument("--out", type=Path, required=True, help="benchmark root to write <dataset>/ into")
        if name in CUT3R_SPLITS:
            s.add_argument("--protocol", choices=("all", "vda", "cut3r"), default="all",
                           help="which indexes to write: the vda protocol's, the cut3r split (vda eval --protocol "
                                "cut3r), or both (all: the cut3r split is skipped with a note when the raw folder "
                                "lacks its sequences)")
        if name == "kitti":
            s.add_argument("--depth", type=Path, required=True, help="KITTI depth annotations split (e.g. val/)")
        if name == "scannet":
            s.add_argument("--max-scenes", type=int, default=100, help="scenes to export at most")
            s.add_argument("--max-frames", type=int, default=510, help="frames per scene at most")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    return errors.run_command(prog, lambda: _prepare(args), known=(ReadError,))  # BenchmarkError included


def _prepare(args) -> int:
    if args.dataset == "kitti":
        paths = prepare_kitti(args.raw, args.depth, args.out, args.protocol)
    elif args.dataset == "scannet":
        paths = prepare_scannet(args.raw, args.out, args.max_scenes, args.max_frames)
    elif args.dataset == "nyuv2":
        paths = prepare_nyuv2(args.raw, args.out)
    else:
        paths = {"bonn": prepare_bonn, "sintel": prepare_sintel}[args.dataset](args.raw, args.out, args.protocol)
    for path in paths:
        print(f"wrote {path}")
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
