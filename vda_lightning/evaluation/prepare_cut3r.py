"""The CUT3R-family splits in our benchmark layout (what `vda prepare-benchmark ... --protocol cut3r|all` adds).

Each split's index is `<out>/<dataset>/<json_name>` over the files our layout already holds: Bonn's and KITTI's
are the vda protocol's files (`prepare.prepare_bonn`, `prepare.prepare_kitti`) listed again with the family's
sequences and frame ranges (`cut3r_splits.CUT3R_SPLITS`); Sintel's need the `final` pass and the raw float32
`.dpt` depth, which `prepare_sintel_frames` adds beside the vda protocol's `clean` frames and 16-bit depth.
Frames are sorted by name as the family's `sorted(glob(...))` sorts them (character order, not natural order:
the two differ for Bonn's time stamps of uneven length), then RGB and depth are paired by position, as there.

Trust (docs/reliability.md): names are checked (`trust.check_name`) before they become output names or JSON
entries; a `.dpt` is read through `io.read_depth` (header and size checked against the file and the caps) and
written back from the array read, so the stored file is exactly what was checked.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..io import atomic_path, list_files, read_depth, write_dpt, write_json_atomic
from ..io.benchmark_json import BenchmarkError
from ..trust import check_name, display, regular_file
from .cut3r_splits import Cut3rSplit

IMAGE_SUFFIXES = (".png", ".jpg")


def sorted_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files directly in `folder`, names checked, in character order of their names (`sorted(glob)`)."""
    files = sorted(list_files(folder, suffixes), key=lambda p: p.name)
    for path in files:
        check_name(path, "frame file", BenchmarkError)
    return files


def copy_file(src: Path, dst: Path) -> None:
    """A byte copy of a regular file (a FIFO or a folder is refused, not waited on), written atomically."""
    regular_file(src, "file", error=BenchmarkError)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def missing_sequences(root: Path, split: Cut3rSplit) -> list[str]:
    return [name for name in split.sequences or () if not (root / name).is_dir()]


def skip_or_fail(split: Cut3rSplit, why: str, required: bool) -> None:
    """`--protocol cut3r` asked for the split: an error; `all`: a note, and the vda protocol's files stand alone."""
    if required:
        raise BenchmarkError(why)
    print(f"note: the cut3r {split.name} split is not written: {why}", file=sys.stderr)


def _sequence_entries(dataset_dir: Path, sequence: Path, split: Cut3rSplit) -> list[dict]:
    start, stop = split.frames
    images = sorted_files(sequence / split.image_dir, IMAGE_SUFFIXES)[start:stop]
    depths = sorted_files(sequence / split.depth_dir, (".png", ".dpt"))[start:stop]
    if not images or len(images) != len(depths):
        raise BenchmarkError(f"{display(sequence)}: {len(images)} images in {split.image_dir}/ but {len(depths)} "
                             f"depth maps in {split.depth_dir}/ for frames [{start}:{stop}] of the cut3r split")
    return [{"image": image.relative_to(dataset_dir).as_posix(), "gt_depth": depth.relative_to(dataset_dir).as_posix(),
             "factor": split.factor} for image, depth in zip(images, depths)]


def write_cut3r_index(dataset_dir: Path, split: Cut3rSplit, required: bool = False) -> Path | None:
    """`<dataset_dir>/<json_name>` for the split's sequences (every sequence folder when it names none), or None
    (after a note) when a sequence is missing and the split was not `required`."""
    dataset_dir = Path(dataset_dir)
    missing = missing_sequences(dataset_dir, split)
    if missing:
        skip_or_fail(split, f"{display(dataset_dir)} lacks {len(missing)} of its {len(split.sequences)} sequences "
                            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})", required)
        return None
    if split.sequences is not None:
        names = sorted(split.sequences)
    else:
        names = sorted(p.name for p in dataset_dir.iterdir() if p.is_dir())
    for name in names:
        check_name(name, "sequence folder", BenchmarkError)
    index = [{name: _sequence_entries(dataset_dir, dataset_dir / name, split)} for name in names]
    path = dataset_dir / split.json_name
    write_json_atomic(path, {split.dataset: index})
    return path


def prepare_sintel_frames(raw: Path, out: Path, split: Cut3rSplit, required: bool = False) -> bool:
    """The split's `final` frames (byte copies) and `.dpt` depth (read, checked, written) into
    `<out>/sintel/<seq>/{final,depth_dpt}/`; False (after a note) when the raw folder lacks them and not required."""
    missing = missing_sequences(raw / "final", split) + [f"depth/{n}" for n in missing_sequences(raw / "depth", split)]
    if missing:
        skip_or_fail(split, f"{display(raw)} lacks final/ or depth/ folders of {len(missing)} of its sequences "
                            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); it scores the final "
                            "pass", required)
        return False
    dst = Path(out) / split.dataset
    for name in split.sequences:
        for image in sorted_files(raw / "final" / name, (".png",)):
            copy_file(image, dst / name / split.image_dir / image.name)
        for depth in sorted_files(raw / "depth" / name, (".dpt",)):
            write_dpt(dst / name / split.depth_dir / depth.name, read_depth(depth, what="Sintel depth"))
    return True
