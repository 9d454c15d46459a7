"""The dataset converters and `vda shard` at the trust boundary (issue 24): what a converter writes is checked
(rotations orthonormal with det +1, positive focal lengths, depth units plausible for the dataset), every text
table, annotation, manifest and shard index is read through `vda_lightning.trust`, and each bad input ends in ONE
line naming the file and the line or frame (exit 2), never a traceback, a crash or silently wrong shards.

The attacks reproduce the issue's findings on replicas of the raw layouts (tests/fakes/raw_datasets.py); the
Hypothesis tests feed random and mutated inputs to the readers and checks directly (in process, deterministic).
"""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from vda_lightning.data.cli import main as vda_shard
from vda_lightning.data.convert import sequence_report
from vda_lightning.data.converters.base import image_size, read_table
from vda_lightning.data.converters.dynamic_replica import load_annotations
from vda_lightning.data.converters.geometry import (
    ROTATION_TOLERANCE,
    check_camera,
    intrinsics_problem,
    quaternion_to_matrix,
    rotation_problem,
)
from vda_lightning.data.manifests import read_folders, read_manifest
from vda_lightning.data.shards import count_samples, read_index
from vda_lightning.trust import ReadError

from tests.fakes.raw_datasets import WRITERS

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])          # pure functions
FUZZ_FILES = settings(FUZZ, max_examples=80)                            # one file written per example


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    base = tmp_path_factory.mktemp("raw")
    roots = {}
    for name in ("vkitti2", "tartanair", "spring", "pointodyssey", "dynamic-replica"):
        roots[name] = str(base / name)
        WRITERS[name](roots[name])
    return roots


def copy_of(raw, name, tmp_path) -> Path:
    dst = tmp_path / name
    shutil.copytree(raw[name], dst)
    return dst


def shard(*args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `vda shard ARGS --no-progress`, in process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = vda_shard([*map(str, args), "--no-progress"])
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    return lines[0]


def refused(out: Path, *args) -> str:
    """Run the conversion, assert exit 2 with one error line and no shard written; return the line."""
    code, _, err = shard(*args, "--out", out)
    assert code == 2, err
    assert not out.exists() or not list(out.glob("*.tar")), sorted(os.listdir(out))
    return one_error_line(err)


def edit_line(path: Path, lineno: int, edit) -> None:
    """Replace the words of line `lineno` (1-based) by edit(words)."""
    lines = path.read_text().splitlines()
    lines[lineno - 1] = " ".join(edit(lines[lineno - 1].split()))
    path.write_text("\n".join(lines) + "\n")


VKITTI_EXTR = ("vkitti_2.0.3_textgt", "Scene01", "clone", "extrinsic.txt")
ROTATION_WORDS = (2, 3, 4, 6, 7, 8, 10, 11, 12)   # r11..r33 after `frame cameraID` in a VKITTI 2 extrinsic row


# -- 1. silent wrong geometry and units --------------------------------------------------------------------------

@pytest.mark.parametrize("attack, says", [
    (lambda r: ["0"] * 9, "det 0"),                                     # a zero rotation
    (lambda r: [repr(5 * float(x)) for x in r], "det 125"),              # x5
    (lambda r: [repr(-float(x)) for x in r], "reflection"),              # det -1
])
def test_vkitti2_extrinsics_that_are_not_a_rotation_are_refused_naming_file_and_frame(raw, tmp_path, attack, says):
    root = copy_of(raw, "vkitti2", tmp_path)
    extr = root.joinpath(*VKITTI_EXTR)

    def edit(words):  # line 4: frame 1 of Camera_0 (rows: header, f0 c0, f0 c1, f1 c0, ...)
        rot = attack([words[k] for k in ROTATION_WORDS])
        for k, v in zip(ROTATION_WORDS, rot):
            words[k] = v
        return words

    edit_line(extr, 4, edit)
    line = refused(tmp_path / "o", "vkitti2", root)
    assert f"{extr} (Camera_0): frame 1 (rgb_00001.jpg): rotation is" in line and says in line


@pytest.mark.parametrize("fx", ["0", "-38"])
def test_spring_non_positive_focal_length_is_refused_naming_file_and_frame(raw, tmp_path, fx):
    root = copy_of(raw, "spring", tmp_path)
    intr = root / "train" / "0001" / "cam_data" / "intrinsics.txt"
    edit_line(intr, 3, lambda w: [fx, *w[1:]])
    line = refused(tmp_path / "o", "spring", root)
    assert f"{intr}: frame 2 (frame_left_0003.png): focal lengths fx {fx}" in line and "must be positive" in line


def test_spring_nan_focal_length_is_refused_naming_file_and_line(raw, tmp_path):
    root = copy_of(raw, "spring", tmp_path)
    intr = root / "train" / "0001" / "cam_data" / "intrinsics.txt"
    edit_line(intr, 2, lambda w: ["nan", *w[1:]])
    assert f"{intr}:2: 'nan' is not a finite number" in refused(tmp_path / "o", "spring", root)


def test_tartanair_depth_in_millimetres_is_refused(raw, tmp_path):
    root = copy_of(raw, "tartanair", tmp_path)
    depth_dir = next(root.rglob("depth_left"))
    for p in depth_dir.glob("*.npy"):
        np.save(p, np.load(p) * 1000)
    line = refused(tmp_path / "o", "tartanair", root)
    assert f"{depth_dir / '000000_left_depth.npy'} (tartanair/abandonedfactory/Easy/P000/left, sampled frames " \
           "0, 2, 3): no valid depth pixel" in line and "--allow-depth-range" in line
    code, _, _ = shard("tartanair", root, "--out", tmp_path / "forced", "--allow-depth-range", "--clip-len", "0")
    assert code == 0                                                    # the user can still say it is right


@pytest.mark.parametrize("scale, median", [(10, "173 m"), (0.01, "0.17 m")])
def test_vkitti2_depth_off_by_a_power_of_ten_is_refused(raw, tmp_path, scale, median):
    root = copy_of(raw, "vkitti2", tmp_path)
    for p in root.rglob("depth_*.png"):
        d = cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.float64)
        cv2.imwrite(str(p), np.where(d == 65535, 65535, np.clip(np.rint(d * scale), 1, 65534)).astype(np.uint16))
    line = refused(tmp_path / "o", "vkitti2", root)
    assert "depth_00000.png (vkitti2/Scene01/clone/Camera_0, sampled frames 0, 2, 3): median depth " + median in line
    assert "outside the plausible 1-100 m for vkitti2" in line


def test_each_converter_states_its_plausible_depth_range_in_its_help(capsys):
    with pytest.raises(SystemExit):
        vda_shard(["vkitti2", "--help"])
    assert "outside 1-100 m" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("name, flag, value", [("spring", "--baseline", "0"), ("pointodyssey", "--full-scale", "nan"),
                                               ("tartanair", "--sky-depth", "-1")])
def test_options_that_would_zero_the_depth_are_refused(raw, tmp_path, name, flag, value):
    line = refused(tmp_path / "o", name, raw[name], flag, value)
    assert f"{flag} {value}: must be a positive finite number" in line


# -- 2. converter errors name the file and the line or frame ---------------------------------------------------

def folders_root(tmp_path, n=3, size=(12, 16)) -> Path:
    seq = tmp_path / "src" / "walk"
    (seq / "frames").mkdir(parents=True)
    (seq / "depth").mkdir()
    for t in range(n):
        cv2.imwrite(str(seq / "frames" / f"{t:04d}.png"), np.full((*size, 3), 40 * t, np.uint8))
        np.save(seq / "depth" / f"{t:04d}.npy", np.full(size, 2.0 + t, np.float32))
    return seq


@pytest.mark.parametrize("name, text, says", [
    ("K.txt", "1 2 abc\n0 1 2\n0 0 1\n", "K.txt:1: 'abc' is not a number"),
    ("K.txt", "10 0 8\n0 10 6\n", "K.txt: K must be 3x3 (or 4x4), found 2 rows of 3"),
    ("K.txt", "0 0 8\n0 10 6\n0 0 1\n", "K.txt: all frames: focal lengths fx 0, fy 10 must be positive"),
    ("poses.txt", "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0\n" * 3, "poses.txt:1: expected 16 numbers per line, found 15"),
    ("poses.txt", "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n" * 2, "poses.txt: 2 pose entries for 3 frames"),
    ("poses.txt", "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n" * 2 + "2 0 0 0 0 2 0 0 0 0 2 0 0 0 0 1\n",
     "poses.txt: frame 2 (0002.png): rotation is not orthonormal (det 8"),
])
def test_folders_camera_files_errors_name_the_file_and_line(tmp_path, name, text, says):
    seq = folders_root(tmp_path)
    (seq / name).write_text(text)
    line = refused(tmp_path / "o", "folders", tmp_path / "src", "--clip-len", "0")
    assert f"{seq}/{says}" in line, line


def test_a_15_number_pose_row_and_a_zero_quaternion_name_file_and_line(raw, tmp_path):
    root = copy_of(raw, "vkitti2", tmp_path)
    extr = root.joinpath(*VKITTI_EXTR)
    edit_line(extr, 3, lambda w: w[:-1])
    assert f"{extr}:3: expected 18 numbers per line, found 17" in refused(tmp_path / "o", "vkitti2", root)

    root = copy_of(raw, "tartanair", tmp_path)
    pose = next(root.rglob("pose_left.txt"))
    edit_line(pose, 3, lambda w: w[:3] + ["0", "0", "0", "0"])
    line = refused(tmp_path / "o2", "tartanair", root)
    assert f"{pose}:3: quaternion (qx qy qz qw) = (0 0 0 0) has norm 0, not 1" in line


def test_a_depth_png_of_another_size_names_the_file_and_frame(raw, tmp_path):
    root = copy_of(raw, "vkitti2", tmp_path)
    bad = next(root.rglob("Camera_0/depth_00001.png"))
    cv2.imwrite(str(bad), np.full((7, 9), 1500, np.uint16))
    line = refused(tmp_path / "o", "vkitti2", root, "--clip-len", "0")
    assert f"{bad}: depth is 9x7 but the frames are 40x30 (frame 1 (rgb_00001.jpg) of vkitti2/Scene01/clone/Camera_0)" \
        in line

    seq = folders_root(tmp_path / "f")
    np.save(seq / "depth" / "0002.npy", np.ones((7, 9), np.float32))
    line = refused(tmp_path / "o2", "folders", tmp_path / "f" / "src", "--clip-len", "0")
    assert f"{seq / 'depth' / '0002.npy'}: depth is 9x7 but the frames are 16x12 (frame 2 (0002.png)" in line


# -- 3. file names that are not UTF-8 --------------------------------------------------------------------------

def test_a_frame_named_in_bytes_that_are_not_utf8_is_read_as_bytes_not_crashed_on(tmp_path):
    """`vda shard folders` with a frame `0001\\xff.png` used to segfault in OpenCV (it got the name). Frames are
    read by Python and decoded from bytes, and a frame's name goes nowhere into the output: it is converted like
    any other (in a subprocess, so that a crash would show as a crash)."""
    seq = folders_root(tmp_path)
    frames = os.fsencode(seq / "frames")
    os.rename(os.path.join(frames, b"0001.png"), os.path.join(frames, b"0001\xff.png"))
    out = tmp_path / "o"
    res = subprocess.run([sys.executable, "-m", "vda_lightning", "shard", "folders", str(tmp_path / "src"), "--out",
                          str(out), "--clip-len", "0", "--depth-encoding", "f32", "--no-progress"],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.splitlines()[-1])["samples"] == 1
    from vda_lightning.data.format import decode_members
    from vda_lightning.data.streams import SkipCounters, iter_tar_samples

    (sample,) = list(iter_tar_samples(str(out / "train-000000.tar"), SkipCounters(0)))
    rec = decode_members(sample)
    assert rec.num_frames == 3 and [int(rec.frames[i].mean()) for i in range(3)] == [0, 40, 80]


def test_a_sequence_folder_named_in_bytes_that_are_not_utf8_is_one_line(tmp_path):
    folders_root(tmp_path)
    src = os.fsencode(tmp_path / "src")
    os.rename(os.path.join(src, b"walk"), os.path.join(src, b"walk\xfe"))
    line = refused(tmp_path / "o", "folders", tmp_path / "src", "--clip-len", "0")
    assert f"{tmp_path / 'src'}/walk\\xfe: sequence folder name is not valid UTF-8" in line


def test_image_size_reads_the_header_only_and_refuses_a_pixel_bomb(tmp_path):
    bomb = tmp_path / "000000_left.png"   # a few dozen bytes whose header declares 100000 x 100000 pixels
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
                     + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    with pytest.raises(ReadError, match=r"000000_left.png: its header says 100000x100000 pixels.*VDA_MAX_PIXELS"):
        image_size(str(bomb))
    cv2.imwrite(str(tmp_path / "ok.jpg"), np.zeros((30, 40, 3), np.uint8))
    assert image_size(str(tmp_path / "ok.jpg")) == (30, 40)
    (tmp_path / "fifo.png").unlink(missing_ok=True)
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(ReadError, match="fifo.png: image is a FIFO"):
        image_size(str(tmp_path / "fifo.png"))


# -- 5. shard-side files through trust -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["../outside/0000.png", "/etc/hostname", "frames/../../outside/0000.png"])
def test_a_manifest_path_outside_its_folder_is_refused_unless_allowed(tmp_path, path):
    seq = folders_root(tmp_path)
    outside = tmp_path / "src" / "outside"
    outside.mkdir()
    shutil.copy(seq / "frames" / "0000.png", outside / "0000.png")
    frames = ["frames/0000.png", path, "frames/0002.png"]
    (seq / "m.json").write_text(json.dumps({"sequences": [{"name": "walk", "frames": frames}]}))
    line = refused(tmp_path / "o", "manifest", seq / "m.json", "--clip-len", "0")
    assert f"{seq / 'm.json'}: sequence 0: frames[1] '{path}' leaves its folder" in line
    (seq / "m.csv").write_text("dataset,sequence,frame\nd,walk,frames/0000.png\nd,walk," + path + "\n")
    line = refused(tmp_path / "o", "manifest", seq / "m.csv", "--clip-len", "0")
    assert f"{seq / 'm.csv'}:3: frame '{path}' leaves its folder" in line
    if path.startswith("/"):
        return
    code, _, err = shard("manifest", seq / "m.json", "--out", tmp_path / "o", "--clip-len", "0",
                         "--allow-absolute-paths")
    assert code == 0, err


@pytest.mark.parametrize("doc, says", [
    ([1, 2], "sequence 0: the document: Input should be"),
    ({"sequences": [{"frames": ["frames/0000.png"], "K": [[0, 0, 1], [0, 10, 1], [0, 0, 1]]}]},
     "sequence 0: all frames: focal lengths fx 0, fy 10 must be positive"),
    ({"sequences": [{"frames": ["frames/0000.png"], "factor": "abc"}]}, "sequence 0: factor: Input should be"),
    ({"sequences": {"a": 1}}, "a JSON manifest is a list of sequences"),
])
def test_a_manifest_that_fails_its_schema_is_one_line(tmp_path, doc, says):
    seq = folders_root(tmp_path)
    (seq / "m.json").write_text(json.dumps(doc))
    assert f"{seq / 'm.json'}: {says}" in refused(tmp_path / "o", "manifest", seq / "m.json", "--clip-len", "0")


def write_annotations(root: Path, annots) -> None:
    with gzip.open(root / "train" / "frame_annotations_train.jgz", "wt", encoding="utf8") as f:
        json.dump(annots, f)


@pytest.mark.parametrize("edit, says", [
    (lambda a: a[0]["image"].update(path="../../../etc/hostname"), "annotation 0: image.path '../../../etc/hostname'"
                                                                   " leaves its folder"),
    (lambda a: a[1]["depth"].update(path="/etc/hostname"), "annotation 1: depth.path '/etc/hostname' leaves"),
    (lambda a: a[2]["viewpoint"].update(R=[[1, 0], [0, 1]]), "annotation: 2.viewpoint.R"),
    (lambda a: a[0].update(frame_number="abc"), "annotation: 0.frame_number: Input should be a valid integer"),
    (lambda a: a[3]["viewpoint"].update(R=[[0, 0, 0]] * 3),
     "frame 0 (009850-3_obj_source_left-0000.png): rotation is"),
])
def test_dynamic_replica_annotations_are_checked_and_confined(raw, tmp_path, edit, says):
    root = copy_of(raw, "dynamic-replica", tmp_path)
    with gzip.open(root / "train" / "frame_annotations_train.jgz", "rt", encoding="utf8") as f:
        annots = json.load(f)
    edit(annots)                                    # the file lists frames 3, 2, 1, 0 (not frame order)
    write_annotations(root, annots)
    line = refused(tmp_path / "o", "dynamic-replica", root)
    assert f"{root / 'train' / 'frame_annotations_train.jgz'}" in line and says in line, line


def test_a_gzip_bomb_annotation_file_stops_at_its_cap(raw, tmp_path, monkeypatch):
    root = copy_of(raw, "dynamic-replica", tmp_path)
    monkeypatch.setenv("VDA_MAX_JSON_BYTES", "100000")
    with gzip.open(root / "train" / "frame_annotations_train.jgz", "wb") as f:
        f.write(b"[" + b" " * 10_000_000 + b"]")
    assert "more than 800,000 bytes of JSON once decompressed" in refused(tmp_path / "o", "dynamic-replica", root)


@pytest.mark.parametrize("attack, says", [
    ("pickle", "holds Python objects (pickles are not read)"),
    ("bomb", "its header claims shape (200000, 200000"),
    ("missing", "anno.npz lacks 'extrinsics'"),
])
def test_pointodyssey_anno_npz_is_read_through_trust(raw, tmp_path, attack, says):
    root = copy_of(raw, "pointodyssey", tmp_path)
    anno = root / "train" / "ani_dancing" / "anno.npz"
    good = dict(np.load(anno))
    if attack == "pickle":
        good["intrinsics"] = np.array([{"x": 1}] * 4, dtype=object)
        np.savez(anno, **good, allow_pickle=True)
    elif attack == "missing":
        del good["extrinsics"]
        np.savez(anno, **good)
    else:  # a member whose .npy header claims 149 GiB, in a few bytes
        import zipfile

        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False,
                                                    "shape": (200000, 200000)})
        with zipfile.ZipFile(anno, "w") as z:
            z.writestr("intrinsics.npy", head.getvalue())
            z.writestr("extrinsics.npy", b"")
    line = refused(tmp_path / "o", "pointodyssey", root)
    assert str(anno) in line and says in line, line


def test_a_shard_whose_index_is_garbage_is_rewritten_not_trusted(raw, tmp_path):
    out = tmp_path / "o"
    args = ["vkitti2", raw["vkitti2"], "--out", out, "--clip-len", "2", "--stride", "2", "--max-samples-per-shard",
            "2", "--cameras", "0"]
    assert shard(*args)[0] == 0
    index = out / "train-000000.index.json"
    doc = json.loads(index.read_text())
    doc["num_samples"] = "two"                            # a wrong type: the whole index is untrusted
    index.write_text(json.dumps(doc))
    assert read_index(str(out / "train-000000.tar")) is None
    code, stdout, _ = shard(*args)
    assert code == 0 and json.loads(stdout.splitlines()[-1])["written"] == 1
    assert read_index(str(out / "train-000000.tar"))["num_samples"] == 2


# -- 6. Hypothesis: random and mutated inputs to the readers and the checks --------------------------------------

@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def assert_one_line_naming(exc: BaseException, name: str) -> None:
    text = str(exc)
    assert "\n" not in text and "\r" not in text and name in text, text


NUMBER_WORDS = st.sampled_from(["0", "1", "-1", "320", "1e3", "abc", "nan", "inf", "-inf", "1e400", "0x10", "",
                                "1,5", "#", "1_0", "\u00bd", "\x00", "   ", "\t", "+.5e-3"])
TABLE_TEXT = st.one_of(
    st.lists(st.lists(NUMBER_WORDS, max_size=8).map(" ".join), max_size=6).map("\n".join),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@FUZZ_FILES
@given(text=TABLE_TEXT, columns=st.sampled_from([None, 3, 4, 7, 16]), header=st.booleans())
@example(text="1 2 abc\n0 1 2\n0 0 1\n", columns=None, header=False)
@example(text="0 " * 15, columns=16, header=False)
@example(text="1 2 3\n1 2\n", columns=None, header=False)
def test_read_table_returns_a_finite_rectangle_or_one_line_naming_the_file(scratch, text, columns, header):
    path = scratch / "table.txt"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        rows = read_table(str(path), columns, header)
    except ReadError as e:
        event("refused")
        assert_one_line_naming(e, str(path))
        return
    assert rows.ndim == 2 and rows.shape[0] >= 1 and np.isfinite(rows).all()
    assert columns is None or rows.shape[1] == columns


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


UNIT_QUATERNIONS = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 1e-7, 1e-4, 2e-3, 0.5])).map(
    lambda a: tuple(float(x) for x in (lambda v: v / np.linalg.norm(v) * (1 + a[1]))(
        np.random.default_rng(a[0]).normal(size=4))))


@FUZZ
@given(q=st.tuples(FLOATS, FLOATS, FLOATS, FLOATS) | UNIT_QUATERNIONS)
@example(q=(0.0, 0.0, 0.0, 0.0))
@example(q=(0.0, 0.0, 0.0, 1.0))
@example(q=(1e-200, 0.0, 0.0, 0.0))
@example(q=(float("nan"), 0.0, 0.0, 1.0))
@example(q=(1.0, 2.0, 3.0, 4.0))
def test_a_quaternion_gives_a_rotation_or_one_line(q):
    try:
        R = quaternion_to_matrix(*q, what="pose_left.txt:7")
    except ReadError as e:
        event("refused")
        assert_one_line_naming(e, "pose_left.txt:7")
        return
    assert rotation_problem(R) is None
    assert abs(math.sqrt(sum(x * x for x in q)) - 1) <= 1e-3


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return Q * np.sign(np.linalg.det(Q))


MATRICES = st.one_of(
    st.lists(FLOATS, min_size=9, max_size=9).map(lambda v: np.array(v).reshape(3, 3)),
    st.tuples(st.integers(0, 2**32 - 1), st.floats(-10, 10)).map(
        lambda a: random_rotation(np.random.default_rng(a[0])) * a[1]),                     # scaled
    st.integers(0, 2**32 - 1).map(lambda s: random_rotation(np.random.default_rng(s)) @ np.diag([1, 1, -1])),
    st.tuples(st.integers(0, 2**32 - 1), st.floats(0, 1e-3)).map(                           # nearly a rotation
        lambda a: random_rotation(np.random.default_rng(a[0])) + a[1] * np.random.default_rng(a[0] + 1).normal(
            size=(3, 3))),
    st.integers(0, 2**32 - 1).map(lambda s: random_rotation(np.random.default_rng(s))),
)


@FUZZ
@given(R=MATRICES, t=st.lists(FLOATS, min_size=3, max_size=3))
@example(R=np.zeros((3, 3)), t=[0.0, 0.0, 0.0])
@example(R=5 * np.eye(3), t=[0.0, 0.0, 0.0])
@example(R=np.diag([1.0, 1.0, -1.0]), t=[0.0, 0.0, 0.0])
@example(R=np.eye(3), t=[float("inf"), 0.0, 0.0])
def test_only_proper_rotations_pass_the_pose_check(R, t):
    with np.errstate(all="ignore"):
        finite = np.isfinite(R).all()
        ok = finite and np.abs(R.T @ R - np.eye(3)).max() <= ROTATION_TOLERANCE and \
            abs(np.linalg.det(R) - 1) <= ROTATION_TOLERANCE
    assert (rotation_problem(R) is None) == bool(ok)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    poses = np.stack([np.eye(4), T])
    try:
        check_camera(None, poses, "K.txt", "extrinsic.txt", lambda i: f"frame {i} (rgb_{i:05d}.jpg)")
    except ReadError as e:
        event("refused")
        assert_one_line_naming(e, "extrinsic.txt: frame 1 (rgb_00001.jpg): ")
        return
    assert ok and np.isfinite(t).all()


@FUZZ
@given(K=st.lists(FLOATS, min_size=9, max_size=9).map(lambda v: np.array(v).reshape(3, 3))
       | st.tuples(FLOATS, FLOATS, FLOATS, FLOATS).map(
           lambda f: np.array([[f[0], 0, f[2]], [0, f[1], f[3]], [0, 0, 1.0]])))
@example(K=np.array([[0.0, 0, 8], [0, 10, 6], [0, 0, 1]]))
@example(K=np.array([[10.0, 0, float("nan")], [0, 10, 6], [0, 0, 1]]))
def test_only_positive_finite_focal_lengths_pass_the_intrinsics_check(K):
    why = intrinsics_problem(K)
    event("refused" if why else "accepted")
    if why is None:
        assert np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0 and list(K[2]) == [0, 0, 1]
    try:
        check_camera(np.stack([np.eye(3), K]), None, "intrinsics.txt", "", lambda i: f"frame {i}")
    except ReadError as e:
        assert why is not None
        assert_one_line_naming(e, "intrinsics.txt: frame 1: ")
    else:
        assert why is None


def _index(**over) -> dict:
    doc = {"format_version": 1, "shard": "train-000000.tar", "num_samples": 2, "num_frames": 4,
           "sample_types": {"clip": 2}, "datasets": {"d": 2}, "bytes": 10240, "spec_hash": "ab", "keys": ["a", "b"],
           "depth_stats": {"d/s": {"kind": "metric_depth", "units": "m", "pixels": 10, "valid": 5, "min": 1.0,
                                   "max": 4.0, "hist": {"200": 5}}}}
    doc.update(over)
    return doc


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
INDEX_KEYS = st.sampled_from(["num_samples", "bytes", "keys", "depth_stats", "sample_types", "spec_hash",
                              "format_version"])
STATS_KEYS = st.sampled_from(["pixels", "valid", "min", "max", "hist", "kind"])


HISTS = st.dictionaries(st.integers(-5, 500).map(str) | st.text(max_size=4), st.integers(-1, 10**12), max_size=4)
VALID_LIKE_INDEXES = st.builds(
    _index, num_samples=st.integers(0, 10**6), bytes=st.integers(0, 10**12),
    keys=st.lists(st.text(max_size=6), max_size=3),
    depth_stats=st.dictionaries(st.text(max_size=6), st.fixed_dictionaries(
        {"pixels": st.integers(0, 10**9), "valid": st.integers(0, 10**9), "hist": HISTS},
        optional={"min": st.floats(allow_nan=False, allow_infinity=False) | st.none(),
                  "max": st.floats(allow_nan=False, allow_infinity=False) | st.none(), "kind": st.text(max_size=6)}),
        max_size=2))


@FUZZ_FILES
@given(doc=st.one_of(
    JSON_VALUES,
    VALID_LIKE_INDEXES,
    st.tuples(INDEX_KEYS, JSON_VALUES).map(lambda kv: _index(**{kv[0]: kv[1]})),
    st.tuples(STATS_KEYS, JSON_VALUES).map(
        lambda kv: _index(depth_stats={"d/s": {**_index()["depth_stats"]["d/s"], kv[0]: kv[1]}})),
), raw_bytes=st.none() | st.binary(max_size=64))
@example(doc=_index(num_samples=-1), raw_bytes=None)
@example(doc=_index(depth_stats={"d/s": {"pixels": 1, "valid": 1, "hist": {"x": 1}}}), raw_bytes=None)
@example(doc=None, raw_bytes=b"NaN")
@example(doc=None, raw_bytes=b"[" * 10000)
def test_read_index_gives_a_checked_index_or_none(scratch, doc, raw_bytes):
    shard_path = scratch / "idx-000000.tar"
    shard_path.write_bytes(b"\0" * 10240)
    data = raw_bytes if raw_bytes is not None else json.dumps(doc).encode()
    (scratch / "idx-000000.index.json").write_bytes(data)
    index = read_index(str(shard_path))
    event("refused (None)" if index is None else "accepted")
    if index is None:
        return
    assert isinstance(index["num_samples"], int) and index["num_samples"] >= 0
    assert isinstance(index["bytes"], int) and all(isinstance(k, str) for k in index["keys"])
    assert count_samples([str(shard_path)]) == index["num_samples"]
    for stats in sequence_report([str(shard_path)]).values():      # the report of a resumed run
        stats.describe("d/s")
        stats.summary()


def _manifest(**over) -> dict:
    s = {"dataset": "d", "name": "walk", "frames": ["walk/frames/0000.png", "walk/frames/0001.png"],
         "depth": ["walk/depth/0000.npy", "walk/depth/0001.npy"], "factor": 1.0, "depth_kind": "metric_depth",
         "K": [[10, 0, 8], [0, 10, 6], [0, 0, 1]], "poses": [np.eye(4).tolist()] * 2}
    s.update(over)
    return {"sequences": [s]}


MANIFEST_KEYS = st.sampled_from(["dataset", "name", "frames", "depth", "mask", "factor", "depth_kind", "K", "poses",
                                 "units"])
PATHS = st.sampled_from(["walk/frames/0000.png", "../x.png", "/etc/passwd", "", "a/../../b", ".", "walk/./../..",
                         "\x00", "walk\\..\\..\\x", "~/x", "walk/frames/0000.png/.."])


@FUZZ_FILES
@given(doc=st.one_of(
    JSON_VALUES,
    st.tuples(MANIFEST_KEYS, JSON_VALUES).map(lambda kv: _manifest(**{kv[0]: kv[1]})),
    st.lists(PATHS, min_size=1, max_size=3).map(lambda p: _manifest(frames=p, depth=None)),
))
@example(doc=[1, 2])
@example(doc=_manifest(name="walk\udcff"))
@example(doc=_manifest(poses=[[[1, 0, 0, 0]] * 4] * 2))
@example(doc=_manifest(K=[[1, 2], [3]]))
@example(doc=_manifest(poses=[[1.0] * 16, [1.0] * 15]))
@example(doc=_manifest(frames=["../x.png"], depth=None))
def test_read_manifest_gives_checked_sequences_inside_its_folder_or_one_line(scratch, doc):
    if not (scratch / "m").exists():
        folders_root(scratch / "m")
    path = scratch / "m" / "src" / "manifest.json"
    path.write_text(json.dumps(doc))
    try:
        seqs = read_manifest(str(path))
    except ReadError as e:
        event("refused")
        assert_one_line_naming(e, str(path))
        return
    base = str(path.parent) + os.sep
    for s in seqs:
        assert all(p.startswith(base) for p in s.frames + (s.depths or []) + (s.masks or []))
        assert s.poses is None or all(rotation_problem(T[:3, :3]) is None for T in s.poses)


@FUZZ_FILES
@given(text=st.one_of(
    st.lists(st.lists(st.sampled_from(["d", "walk", "walk/frames/0000.png", "../x.png", "/etc/passwd", "1", "0",
                                       "abc", "nan", "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1", '"', ""]),
                      min_size=1, max_size=6).map(",".join), max_size=4).map(
        lambda rows: "\n".join(["dataset,sequence,frame,depth,fx,fy,cx,cy,pose", *rows])),
    st.text(max_size=120),
))
@example(text="dataset,sequence,frame\nd,s,walk/frames/0000.png,extra\n")
@example(text='frame\n"unterminated\n')
def test_read_csv_manifest_gives_checked_sequences_or_one_line(scratch, text):
    if not (scratch / "c").exists():
        folders_root(scratch / "c")
    path = scratch / "c" / "src" / "manifest.csv"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        seqs = read_manifest(str(path))
    except ReadError as e:
        event("refused")
        assert_one_line_naming(e, str(path))
        return
    for s in seqs:
        assert all(p.startswith(str(path.parent) + os.sep) for p in s.frames + (s.depths or []))


@FUZZ_FILES
@given(text=TABLE_TEXT, which=st.sampled_from(["K.txt", "poses.txt"]))
@example(text="1 2 abc\n0 1 2\n0 0 1\n", which="K.txt")
@example(text="1 " * 15, which="poses.txt")
def test_folders_camera_files_give_valid_geometry_or_one_line(scratch, text, which):
    root = scratch / "fold"
    if not root.exists():
        folders_root(root)
    seq = root / "src" / "walk"
    for name in ("K.txt", "poses.txt"):
        (seq / name).unlink(missing_ok=True)
    (seq / which).write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        (spec,) = read_folders(str(root / "src"))
    except ReadError as e:
        event("refused")
        assert_one_line_naming(e, str(seq / which))
        return
    if spec.K is not None:
        assert intrinsics_problem(spec.K) is None
    if spec.poses is not None:
        assert all(rotation_problem(T[:3, :3]) is None for T in spec.poses)


ANNOTATION_KEYS = st.sampled_from(["sequence_name", "frame_number", "camera_name", "image", "depth", "viewpoint"])
VIEWPOINT_KEYS = st.sampled_from(["R", "T", "focal_length", "principal_point", "intrinsics_format"])


@FUZZ_FILES
@given(edit=st.one_of(
    st.tuples(st.just("top"), ANNOTATION_KEYS, JSON_VALUES),
    st.tuples(st.just("viewpoint"), VIEWPOINT_KEYS, JSON_VALUES),
    st.tuples(st.just("doc"), st.just(""), JSON_VALUES),
))
@example(edit=("viewpoint", "R", [[1, 0, 0], [0, 1, 0]]))
@example(edit=("top", "image", {"path": "../../x.png", "size": [36, 48]}))
def test_dynamic_replica_annotations_give_checked_frames_or_one_line(scratch, edit):
    root = scratch / "dr"
    (root / "train").mkdir(parents=True, exist_ok=True)
    annot = {"sequence_name": "s", "frame_number": 0, "camera_name": "left",
             "image": {"path": "s/images/0.png", "size": [36, 48]},
             "depth": {"path": "s/depths/0.png", "scale_adjustment": 1.0},
             "viewpoint": {"R": np.eye(3).tolist(), "T": [0, 0, 0], "focal_length": [1.5, 1.5],
                           "principal_point": [0, 0], "intrinsics_format": "ndc_isotropic"}}
    where, key, value = edit
    if where == "top":
        annot[key] = value
    elif where == "viewpoint":
        annot["viewpoint"][key] = value
    doc = value if where == "doc" else [annot]
    write_annotations(root, doc)
    path = str(root / "train" / "frame_annotations_train.jgz")
    try:
        annots, _ = load_annotations(str(root), "train")
    except ReadError as e:
        event("refused")
        assert_one_line_naming(e, path)
        return
    assert all(isinstance(a.sequence_name, str) and a.frame_number >= 0 for a in annots)
