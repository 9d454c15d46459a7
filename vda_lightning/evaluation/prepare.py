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
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..cli import errors
from ..cli.options import HelpFormatter
from ..io import ReadError, list_files, read_depth, write_json_atomic
from ..io.depth import DPT_TAG
from .benchmarks import BENCHMARKS, TAE_SETTINGS, BenchmarkError

PROG = "vda-prepare-benchmark"
# OpenCV is imported where images are read or written: `vda prepare-benchmark --help` starts without it.
SINTEL_FACTOR = 65535 / 650


def _listing(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise BenchmarkError(f"{folder}: expected folder not found")
    files = list_files(folder, suffixes)
    if not files:
        raise BenchmarkError(f"{folder}: no {'/'.join(suffixes)} files")
    return files


def _subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BenchmarkError(f"{folder}: raw dataset folder not found")
    dirs = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)
    if not dirs:
        raise BenchmarkError(f"{folder}: no sequence folders")
    return dirs


def _read_color(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR in memory; cv2.imwrite below expects BGR: colours kept
    if img is None:
        raise BenchmarkError(f"{path}: image missing or unreadable")
    return img


def _write_image(path: Path, img: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise BenchmarkError(f"{path}: could not write image")


def _copy(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise BenchmarkError(f"{src}: file not found")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


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
        for image, depth in zip(images, depths):
            entry = {"image": image.relative_to(dataset_dir).as_posix(),
                     "gt_depth": depth.relative_to(dataset_dir).as_posix(), "factor": factor}
            if extras is not None:
                entry.update(extras(seq, image))
            entries.append(entry)
        data.append({seq.name: entries})
    path = dataset_dir / json_name
    write_json_atomic(path, {dataset: data})
    return path


def _indices_for(dataset: str) -> list[tuple[str, tuple]]:
    return [(s.json_name, s.json_frames) for s in BENCHMARKS.values() if s.dataset == dataset]


# --------------------------------------------------------------------------------------------- datasets

def prepare_kitti(raw: Path, depth_root: Path, out: Path) -> list[Path]:
    """KITTI raw (`<date>/<drive>/image_02/data/*.png`) + depth annotations (`<drive>/proj_depth/groundtruth/
    image_02/*.png`): every annotated drive, whole sequence; images cropped to even H, W."""
    dst = out / "kitti"
    for seq in tqdm(_subdirs(depth_root), desc="kitti", unit="seq"):
        for depth in _listing(seq / "proj_depth/groundtruth/image_02", (".png",)):
            image = raw / seq.name[:10] / seq.name / "image_02/data" / depth.name
            _write_image(dst / seq.name / "rgb" / depth.name, _even_crop(_read_color(image)))
            _copy(depth, dst / seq.name / "depth" / depth.name)
    return [write_index(dst, "kitti", name, frames, "rgb", 256.0) for name, frames in _indices_for("kitti")]


def prepare_bonn(raw: Path, out: Path) -> list[Path]:
    """Bonn RGB-D Dynamic (`<seq>/rgb/*.png`, `<seq>/depth/*.png`): every sequence; even crop."""
    dst = out / "bonn"
    for seq in tqdm(_subdirs(raw), desc="bonn", unit="seq"):
        images, depths = _listing(seq / "rgb", (".png",)), _listing(seq / "depth", (".png",))
        if len(images) != len(depths):
            raise BenchmarkError(f"{seq}: {len(images)} rgb frames but {len(depths)} depth frames")
        for image, depth in zip(images, depths):
            _write_image(dst / seq.name / "rgb" / image.name, _even_crop(_read_color(image)))
            _copy(depth, dst / seq.name / "depth" / depth.name)
    return [write_index(dst, "bonn", name, frames, "rgb", 5000.0) for name, frames in _indices_for("bonn")]


def _scannet_extras(seq: Path, image: Path) -> dict:
    K = np.loadtxt(seq / "intrinsic" / "intrinsic_depth.txt")
    pose = np.loadtxt(seq / "pose" / (image.stem + ".txt"))
    return {"K": K.tolist(), "pose": pose.tolist()}


def prepare_scannet(raw: Path, out: Path, max_scenes: int = 100, max_frames: int = 510) -> list[Path]:
    import cv2

    """ScanNet export (`<scene>/color/<n>.jpg` at 640x480, `depth/<n>.png`, `pose/<n>.txt`,
    `intrinsic/intrinsic_depth.txt`): first 100 scenes, first 510 frames; `color/` cropped [8:-8, 11:-11],
    `color_origin/` uncropped (for TAE); every JSON entry carries K and pose, like the published one."""
    dst = out / "scannet"
    for seq in tqdm(_subdirs(raw)[:max_scenes], desc="scannet", unit="seq"):
        images = sorted(_listing(seq / "color", (".jpg",)), key=lambda p: int(p.stem))[:max_frames]
        for image in images:
            img = _read_color(image)
            depth = seq / "depth" / (image.stem + ".png")
            depth_shape = cv2.imread(str(depth), cv2.IMREAD_UNCHANGED).shape if depth.is_file() else None
            if depth_shape is not None and img.shape[:2] != depth_shape:
                raise BenchmarkError(f"{image}: colour is {img.shape[1]}x{img.shape[0]} but depth is "
                                     f"{depth_shape[1]}x{depth_shape[0]}; export colour at depth resolution")
            _write_image(dst / seq.name / "color" / image.name, img[8:-8, 11:-11])
            _copy(image, dst / seq.name / "color_origin" / image.name)  # byte copy: no JPEG re-encode
            _copy(depth, dst / seq.name / "depth" / depth.name)
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
        for image in sorted(_listing(seq / "rgb", (".jpg",)), key=lambda p: int(p.stem)):
            _write_image(dst / seq.name / "rgb" / image.name, _read_color(image)[45:471, 41:601])
            _copy(seq / "depth" / (image.stem + ".png"), dst / seq.name / "depth" / (image.stem + ".png"))
    return [write_index(dst, "nyuv2", name, frames, "rgb", 6000.0) for name, frames in _indices_for("nyuv2")]


def read_sintel_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K 3x3, camera-to-world 4x4) from a Sintel .cam file (world-to-camera 3x4 stored)."""
    with open(path, "rb") as f:
        tag = np.fromfile(f, np.float32, 1)
        if tag.size != 1 or tag[0] != np.float32(DPT_TAG):
            raise BenchmarkError(f"{path}: not a Sintel .cam file (bad tag)")
        K = np.fromfile(f, np.float64, 9).reshape(3, 3)
        extrinsic = np.eye(4)
        extrinsic[:3] = np.fromfile(f, np.float64, 12).reshape(3, 4)
    return K, np.linalg.inv(extrinsic)


def prepare_sintel(raw: Path, out: Path) -> list[Path]:
    """MPI-Sintel training (`clean/<seq>/*.png`, `depth/<seq>/*.dpt`, optional `camdata_left/<seq>/*.cam`)."""
    dst = out / "sintel"
    cams = {}
    for seq in tqdm(_subdirs(raw / "clean"), desc="sintel", unit="seq"):
        for image in _listing(seq, (".png",)):
            _copy(image, dst / seq.name / "clean" / image.name)
            depth = read_depth(raw / "depth" / seq.name / (image.stem + ".dpt"))
            raw16 = np.clip(np.round(depth.astype(np.float64) * SINTEL_FACTOR), 0, 65535).astype(np.uint16)
            _write_image(dst / seq.name / "depth" / (image.stem + ".png"), raw16)
            cam = raw / "camdata_left" / seq.name / (image.stem + ".cam")
            if cam.is_file():
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
        paths = prepare_kitti(args.raw, args.depth, args.out)
    elif args.dataset == "scannet":
        paths = prepare_scannet(args.raw, args.out, args.max_scenes, args.max_frames)
    else:
        paths = {"bonn": prepare_bonn, "nyuv2": prepare_nyuv2, "sintel": prepare_sintel}[args.dataset](
            args.raw, args.out)
    for path in paths:
        print(f"wrote {path}")
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
