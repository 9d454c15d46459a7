"""The evaluation side of the trust boundary (issue 24): `vda eval` and `vda prepare-benchmark` under attack.

Re-runs of the reported attacks, end to end: a benchmark JSON path that climbs out of its folder, a prediction folder
whose sub-folder is a symlink out, a manifest that is not an object, header bombs as ground truth, image and
prediction (peak memory of the whole command measured), a relative checkpoint or millimetre predictions scored as
metres. Then Hypothesis: random and mutated index documents, manifests, results files, prediction bytes and camera
files to their readers — a one-line error naming the file, or a parse whose every path stays inside its root;
never another exception, never a file written outside the output folder.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vda_lightning.evaluation.cli import check_units, main
from vda_lightning.evaluation.predictions import (
    MANIFEST,
    check_saved_predictions,
    prediction_path,
    read_prediction,
)
from vda_lightning.evaluation.prepare import SINTEL_CAM_BYTES, read_matrix, read_sintel_cam
from vda_lightning.evaluation.report import load_results, markdown_table
from vda_lightning.io.benchmark_json import BenchmarkError, read_benchmark_index
from vda_lightning.io.depth import DPT_TAG
from vda_lightning.trust import ReadError

from tests.fakes.benchmark import make_tiny_benchmark

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEMORY_BUDGET = 1 << 30  # peak RSS of a whole `vda eval` refusing a header bomb (issue 24: under 1 GiB)


def png(width: int, height: int, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A tiny PNG whose header says width x height (65 bytes, whatever the size it claims)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def npy_bomb(shape=(200000, 200000)) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\x00" * 64


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every file under `root` (outside `skip`): its bytes and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents) or not path.is_file():
            continue
        st_ = path.stat()
        out[str(path)] = (path.read_bytes(), st_.st_mtime_ns)
    return out


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if "error:" in line]


def one_line(exc: BaseException, name: str) -> None:
    text = str(exc)
    assert "\n" not in text and name in text, (name, text)


# -- 1. paths out of the benchmark root ----------------------------------------------------------------------------

def _escape_layout(tmp_path: Path, key: str, value: str) -> tuple[Path, Path, Path]:
    """The issue's attack: a bonn index at tmp/a/b/benchmark/bonn whose first frame's `key` is `value`, an
    existing image and .npy at tmp/outside, predictions saved to tmp/x/y/pred (../../../../ from P/bonn = tmp)."""
    make_tiny_benchmark(tmp_path / "a" / "b", "bonn", sequences=1, frames=3, height=20, width=28, seed=3)
    index = tmp_path / "a" / "b" / "benchmark" / "bonn" / "bonn_video.json"
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(index.parent / "seq00" / "rgb" / "00000.png", outside / "img.png")
    (outside / "img.npy").write_bytes(b"precious, not a prediction")
    doc = json.loads(index.read_text())
    doc["bonn"][0]["seq00"][0][key] = value
    index.write_text(json.dumps(doc))
    return index, outside, tmp_path / "x" / "y" / "pred"


@pytest.mark.parametrize("key, value", [
    ("image", "../../../../outside/img.png"),          # the attack
    ("image", "seq00/../../../../../outside/img.png"),  # climbs out after going in
    ("gt_depth", "../../../../outside/img.png"),
])
def test_a_json_path_out_of_the_benchmark_root_is_refused_and_nothing_outside_is_touched(
        tiny_checkpoint, tmp_path, capsys, key, value):
    index, outside, pred = _escape_layout(tmp_path, key, value)
    before = snapshot(tmp_path, skip=pred)
    code = main(["--checkpoint", str(tiny_checkpoint), "--benchmark-root", str(index.parent.parent), "--benchmark",
                 "bonn", "--input-size", "28", "--device", "cpu", "--save-predictions", str(pred), "--output",
                 str(tmp_path / "out" / "r.json"), "--no-progress"])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1, lines
    assert str(index) in lines[0] and "sequence 'seq00' frame 0" in lines[0] and "leaves its folder" in lines[0]
    assert snapshot(tmp_path, skip=pred) == before  # outside/img.npy: same bytes, same mtime; nothing new
    assert not list(pred.rglob("*.npy"))


def test_an_absolute_path_in_the_index_is_refused_under_predictions_too(tmp_path, capsys):
    index, outside, _ = _escape_layout(tmp_path, "image", str(tmp_path / "outside" / "img.png"))
    before = snapshot(tmp_path)
    code = main(["--predictions", str(tmp_path / "a" / "b" / "predictions"), "--benchmark-root",
                 str(index.parent.parent), "--benchmark", "bonn", "--output", str(tmp_path / "r.json"),
                 "--no-progress"])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1 and str(index) in lines[0] and "frame 0: image" in lines[0], lines
    assert snapshot(tmp_path) == before


def test_a_prediction_folder_symlinked_out_is_refused_before_a_write(tiny_checkpoint, tmp_path, capsys):
    make_tiny_benchmark(tmp_path, "bonn", sequences=1, frames=3, height=20, width=28, seed=3)
    pred, outside = tmp_path / "pred", tmp_path / "outside"
    outside.mkdir()
    pred.mkdir()
    (pred / "bonn").symlink_to(outside, target_is_directory=True)
    code = main(["--checkpoint", str(tiny_checkpoint), "--benchmark-root", str(tmp_path / "benchmark"),
                 "--benchmark", "bonn", "--input-size", "28", "--device", "cpu", "--save-predictions", str(pred),
                 "--output", str(tmp_path / "r.json"), "--no-progress"])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1 and "through a symlink" in lines[0] and "frame 0" in lines[0], lines
    assert not any(outside.rglob("*")) and not (tmp_path / "r.json").exists()


def test_index_paths_come_back_normalised_inside_the_root(tmp_path):
    """`a/../b` is resolved in the text, so a later open never walks `..` out of a symlinked folder `a`."""
    index = tmp_path / "b.json"
    index.write_text(json.dumps({"kitti": [{"s": [{"image": "s/./link/../rgb//0.png", "gt_depth": "s/d/0.png",
                                                    "factor": 256}]}]}))
    (frame,) = read_benchmark_index(index)[0].frames
    assert frame.image == "s/rgb/0.png" and frame.gt_depth == "s/d/0.png" and frame.factor == 256.0


# -- 2. the predictions manifest -----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, says", [
    (b"[1, 2]", "the document: Input should be a valid dictionary"),                     # the attack
    (b'{"input_size": "28"}', "input_size: Input should be a valid integer"),
    (b'{"encoder": NaN}', "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
])
def test_a_manifest_that_is_not_a_manifest_is_one_line(tiny_checkpoint, tmp_path, capsys, content, says):
    make_tiny_benchmark(tmp_path, "bonn", sequences=1, frames=3, height=20, width=28, seed=3)
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / MANIFEST).write_bytes(content)
    code = main(["--checkpoint", str(tiny_checkpoint), "--benchmark-root", str(tmp_path / "benchmark"),
                 "--benchmark", "bonn", "--input-size", "28", "--device", "cpu", "--save-predictions", str(pred),
                 "--output", str(tmp_path / "r.json"), "--no-progress"])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1, lines
    assert str(pred / MANIFEST) in lines[0] and says in lines[0] and "another --save-predictions" in lines[0]
    assert (pred / MANIFEST).read_bytes() == content and not list(pred.rglob("*.npy"))


def test_a_manifest_that_is_a_fifo_or_a_folder_is_refused_not_waited_on(tmp_path):
    for kind in ("fifo", "folder"):
        save = tmp_path / kind
        save.mkdir()
        os.mkfifo(save / MANIFEST) if kind == "fifo" else (save / MANIFEST).mkdir()
        with pytest.raises(BenchmarkError, match=f"{kind}/manifest.json: prediction manifest is a"):
            check_saved_predictions(save, {"encoder": "vitt"})


# -- 3. header bombs through `vda eval`, peak memory of the whole command ----------------------------------------

DRIVER = """
import contextlib, io, json, os, sys
import torch, torchmetrics  # noqa: the imports' own peak (~0.85 GiB with torch 2.x) is measured apart
import vda_lightning.evaluation.cli, vda_lightning.evaluation.runner, vda_lightning.checkpoints  # noqa
import vda_lightning.models, vda_lightning.inference, vda_lightning.evaluation.predictions  # noqa
from vda_lightning.cli import main
from vda_lightning.memory import peak_rss_mib
before = peak_rss_mib()
out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    out.append([code, err.getvalue()])
after = peak_rss_mib()
print(json.dumps({"runs": out, "peak": after * 2**20, "growth": (after - before) * 2**20}), flush=True)
sys.stderr.flush()
os._exit(0)  # the peak is the work's: interpreter teardown pages ~0.1 GiB of torch's libraries back in after it
"""
RUN_GROWTH_BUDGET = 256 << 20  # what the runs may add to the imports' peak (~0.1 GiB: a model loads; a bomb: GiBs)


def run_measured(runs: list[list[str]], cwd: Path) -> tuple[list[tuple[int, str]], int, int]:
    """Each `vda ARGS` of `runs`, one after the other in ONE child process (torch is imported once), through the
    command line's own dispatch: ([(exit status, stderr)], the child's peak RSS in bytes, how much the runs grew
    it beyond the imports). The peak is the child's own address space's (`VmHWM`, `vda_lightning.memory`):
    ru_maxrss would carry this test runner's peak across fork and exec (3 GiB late in a full suite)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["timeout", "-s", "KILL", "300", sys.executable, "-c", DRIVER, json.dumps(runs)],
                                cwd=cwd, env=env, stdout=out, stderr=err)
        proc.wait()
        out.seek(0)
        err.seek(0)
        assert proc.returncode == 0, err.read().decode(errors="replace")[-3000:]
        doc = json.loads(out.read())
        return [tuple(r) for r in doc["runs"]], doc["peak"], doc["growth"]


def test_header_bombs_in_eval_inputs_are_one_line_under_1_gib(tiny_checkpoint, tmp_path):
    """A 65-byte PNG saying 100000 x 100000 as ground truth or as an image (under --checkpoint), a prediction .npy
    whose header claims 200000 x 200000 float32 (149 GiB): each one line naming the file, exit 2, and the whole
    process (imports, model, the three runs) peaks under 1 GiB."""
    runs, bombs = [], []
    for target in ("gt", "image", "prediction"):
        case = tmp_path / target
        make_tiny_benchmark(case, "bonn", sequences=1, frames=3, height=20, width=28, seed=3)
        seq = case / "benchmark" / "bonn" / "seq00"
        bomb = {"gt": seq / "depth" / "00001.png", "image": seq / "rgb" / "00001.png",
                "prediction": case / "predictions" / "bonn" / "seq00" / "rgb" / "00001.npy"}[target]
        bomb.write_bytes({"gt": png(100000, 100000, 16, 0), "image": png(100000, 100000)}.get(target) or npy_bomb())
        assert len(bomb.read_bytes()) < 200  # a few bytes that claim gigabytes
        source = (["--checkpoint", str(tiny_checkpoint), "--input-size", "28", "--device", "cpu"]
                  if target == "image" else ["--predictions", str(case / "predictions")])
        runs.append(["eval", *source, "--benchmark-root", str(case / "benchmark"), "--benchmark", "bonn",
                     "--output", str(case / "r.json"), "--no-progress"])
        bombs.append(bomb)
    results, peak, growth = run_measured(runs, tmp_path)
    for (code, err), bomb in zip(results, bombs):
        lines = [line for line in err.splitlines() if "error:" in line]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
        assert lines[0].startswith("vda eval: error: ") and str(bomb) in lines[0], lines
        assert "100000x100000" in lines[0] or "(200000, 200000)" in lines[0], lines
        assert not (bomb.parents[3] / "r.json").exists() and not (bomb.parents[4] / "r.json").exists()
    print(f"child peak RSS {peak / 2**20:.0f} MiB, the runs added {growth / 2**20:.0f} MiB")
    assert peak < MEMORY_BUDGET, f"peak RSS {peak / 2**20:.0f} MiB"  # the bar, imports included
    assert growth < RUN_GROWTH_BUDGET, f"the runs grew the peak by {growth / 2**20:.0f} MiB"


# -- 4. units under --alignment none -------------------------------------------------------------------------------

def test_a_relative_checkpoint_under_no_alignment_is_refused(tiny_checkpoints, tmp_path, capsys):
    make_tiny_benchmark(tmp_path, "bonn", sequences=1, frames=3, height=20, width=28, seed=3)
    relative = tiny_checkpoints["video"]  # its metadata says relative
    code = main(["--checkpoint", str(relative), "--benchmark-root", str(tmp_path / "benchmark"), "--benchmark",
                 "bonn", "--alignment", "none", "--input-size", "28", "--device", "cpu", "--save-predictions",
                 str(tmp_path / "pred"), "--output", str(tmp_path / "r.json"), "--no-progress"])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1, lines
    assert str(relative) in lines[0] and "relative disparity model (from the file's metadata)" in lines[0]
    assert "--alignment none would score its relative disparity as metres" in lines[0]
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "pred").exists()


def test_metric_on_a_checkpoint_whose_metadata_says_relative_is_refused(tiny_checkpoints, tmp_path, capsys):
    """`--metric` stands in for a file that says nothing; against the file's own metadata it is refused, in vda
    eval as in vda infer (cli/options.load_model_kind), before any prediction is made or written."""
    make_tiny_benchmark(tmp_path, "bonn", sequences=1, frames=3, height=20, width=28, seed=3)
    relative = tiny_checkpoints["video"]
    code = main(["--checkpoint", str(relative), "--metric", "--benchmark-root", str(tmp_path / "benchmark"),
                 "--benchmark", "bonn", "--alignment", "none", "--input-size", "28", "--device", "cpu",
                 "--save-predictions", str(tmp_path / "pred"), "--output", str(tmp_path / "r.json"), "--no-progress"])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1, lines
    assert f"{relative}: its metadata says it is a relative disparity model; --metric cannot override" in lines[0]
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "pred").exists()


def test_the_kind_decides_under_no_alignment_only():
    line = "relative disparity model: the file does not say and a probe was inconclusive (...)"
    with pytest.raises(BenchmarkError, match="ckpt.pth: relative disparity model: the file does not say"):
        check_units("ckpt.pth", "none", False, line)  # a relative model by default is relative too
    check_units("ckpt.pth", "none", True, "metric depth model (from the command line)")
    check_units("ckpt.pth", "none", False, line, "disparity")  # said on purpose: its inverse scored as metres
    for alignment in ("scale_shift", "scale"):
        check_units("ckpt.pth", alignment, False, line)


def _metric_predictions(root: Path, dataset: str, factor: float, scale: float) -> None:
    """Replace the fake's predictions by the ground truth in metres times `scale` (1000: millimetres)."""
    for pred in (root / "predictions" / dataset).rglob("*.npy"):
        rel = pred.relative_to(root / "predictions" / dataset).with_suffix(".png")
        gt = cv2.imread(str(root / "benchmark" / dataset / str(rel).replace("/rgb/", "/depth/")), -1) / factor
        np.save(pred, (np.where(gt > 0, gt, 1.0) * scale).astype(np.float32))


@pytest.mark.parametrize("scale, says", [(1000.0, "likely millimetres"), (100.0, "likely centimetres"),
                                         (1 / 200, "likely not depth in metres"), (1.0, None), (4.0, None)])
def test_predictions_in_the_wrong_unit_are_scored_with_a_warning(tmp_path, caplog, scale, says):
    make_tiny_benchmark(tmp_path, "bonn", sequences=2, frames=3, height=20, width=28, seed=3)
    _metric_predictions(tmp_path, "bonn", 5000.0, scale)
    with caplog.at_level(logging.WARNING, logger="vda_lightning.evaluation"):
        assert main(["--predictions", str(tmp_path / "predictions"), "--benchmark-root", str(tmp_path / "benchmark"),
                     "--benchmark", "bonn", "--alignment", "none", "--output", str(tmp_path / "r.json"),
                     "--no-progress"]) == 0
    warnings = [r.getMessage() for r in caplog.records if "--alignment none" in r.getMessage()]
    if says is None:
        assert warnings == []
        return
    assert len(warnings) == 2 and all("\n" not in w for w in warnings), warnings  # one line per sequence
    for name, line in zip(("seq00", "seq01"), warnings):
        assert f"bonn_video.json: sequence '{name}'" in line and says in line, line
        assert f"a median {scale:.3g}x the ground-truth depth" in line, line


# -- 6. fuzzing the readers ----------------------------------------------------------------------------------------

good_paths = st.sampled_from(["seq/rgb/0.png", "seq/./a/../b.png", "seq//rgb///1.png", "x.png", "~/x.png",
                              "a b/ç.png"])
bad_paths = st.sampled_from(["../outside/x.png", "../../../../outside/img.png", "/etc/passwd", "", ".", "..", "./..",
                             "seq/../../x.png", "a\x00b", "a\nb.png", "\udcff.png", "a/../../b"])
paths = st.one_of(good_paths, good_paths, bad_paths, st.text(alphabet=st.sampled_from("ab./\\~\x00\n"), max_size=12),
                  st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**30), st.text(max_size=4),
                    st.booleans(), st.none())
good_K = st.sampled_from([[[500.0, 0, 10], [0, 500, 10], [0, 0, 1]],
                          [[500.0, 0, 10, 0], [0, 500, 10, 0], [0, 0, 1, 0], [0, 0, 0, 1]]])
bad_K = st.sampled_from([[[0, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 2], [3, 4]], [[1, 2, 3]] * 4, [[1, 0, 0]] * 3 + [[]],
                         [[500, 0, 0], [0, -5, 0], [0, 0, 1]], [[500, 0, 0], [0, 500, 0], [0, 0, True]]])
matrices = st.one_of(st.lists(st.lists(numbers, max_size=5), max_size=5), numbers)
eye = np.eye(4).tolist()
frames = st.fixed_dictionaries(
    {"image": paths, "gt_depth": paths, "factor": st.one_of(st.floats(0.001, 1e5), numbers)},
    optional={"K": st.one_of(good_K, bad_K, matrices), "pose": st.one_of(st.just(eye), matrices),
              "extra": numbers})
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=5)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                       max_size=3), max_leaves=12)
plausible = st.fixed_dictionaries(  # strings and numbers where they belong: the paths and the camera decide
    {"image": good_paths | bad_paths, "gt_depth": good_paths | good_paths | bad_paths,
     "factor": st.floats(0.001, 1e5)}, optional={"K": good_K | bad_K, "pose": st.just(eye)})
names = st.sampled_from(["s0", "s1", "..", "a\nb", "\udcff", "a/b"])
sequences = st.dictionaries(names, st.lists(frames, min_size=1, max_size=3), min_size=1, max_size=2)
documents = st.one_of(
    st.fixed_dictionaries({"kitti": st.lists(st.dictionaries(st.sampled_from(["s0", "s1", "a/b"]),
                                                             st.lists(plausible, min_size=1, max_size=3),
                                                             min_size=1, max_size=2), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"kitti": st.lists(sequences, min_size=1, max_size=2)}),  # the shape, wrong values
    st.dictionaries(st.sampled_from(["kitti", "bonn", "..", "a/b"]),
                    st.lists(sequences | json_values, max_size=2) | json_values, max_size=2),  # wrong layout
    json_values)
GOOD = {"kitti": [{"s0": [{"image": "s0/rgb/0.png", "gt_depth": "s0/depth/0.png", "factor": 256,
                           "K": [[500, 0, 10], [0, 500, 10], [0, 0, 1]], "pose": np.eye(4).tolist()}]}]}


def _write_json(path: Path, doc) -> None:
    try:
        path.write_text(json.dumps(doc, allow_nan=True))
    except UnicodeEncodeError:  # a lone surrogate: JSON can carry it escaped
        path.write_text(json.dumps(doc, ensure_ascii=True))


def _inside(root: Path, relative: str) -> bool:
    full = os.path.normpath(os.path.join(root, relative))
    return os.path.commonpath([str(root), full]) == str(root) and full != str(root)


@FUZZ
@given(doc=documents, datasets=st.sampled_from([None, ["kitti"], ["kitti", "bonn"], [".."]]),
       need_pose=st.booleans())
@example(doc={"kitti": [{"s": [{"image": "../../../../outside/img.png", "gt_depth": "d.png", "factor": 1}]}]},
         datasets=["kitti"], need_pose=False)
@example(doc={"kitti": [{"s": [{"image": "a.png", "gt_depth": "d.png", "factor": float("nan")}]}]},
         datasets=None, need_pose=False)
@example(doc={"kitti": [{"s": [{"image": "a.png", "gt_depth": "d.png", "factor": 1, "K": [[1, 0], [0, 1]]}]}]},
         datasets=None, need_pose=True)
@example(doc=GOOD, datasets=["kitti"], need_pose=True)
@example(doc=5, datasets=["kitti"], need_pose=False)
def test_random_benchmark_indexes_parse_inside_their_root_or_are_one_line(tmp_path, doc, datasets, need_pose):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    root, pred = folder / "bench", folder / "pred"
    root.mkdir()
    path = root / "b.json"
    _write_json(path, doc)
    try:
        sequences = read_benchmark_index(path, datasets, need_pose)
    except ReadError as e:  # BenchmarkError is a ReadError
        one_line(e, str(path))
        return
    for seq in sequences:
        assert seq.root == root and seq.frames is not None
        for i, frame in enumerate(seq.frames):
            assert _inside(root, frame.image) and _inside(root, frame.gt_depth), frame
            assert math.isfinite(frame.factor) and frame.factor > 0
            assert frame.K is None or np.asarray(frame.K, np.float64).shape in ((3, 3), (4, 4))
            assert frame.pose is None or np.asarray(frame.pose, np.float64).shape == (4, 4)
            assert not need_pose or (frame.K is not None and frame.pose is not None)
            try:  # the derived prediction path stays inside the predictions folder, or is one line
                target = prediction_path(pred, seq, i, write=True)
            except ReadError as e:
                one_line(e, str(path))
                continue
            assert _inside(pred, str(target.relative_to(pred)))
    assert sorted(p.name for p in folder.rglob("*")) == ["b.json", "bench"]  # nothing was written


@FUZZ
@given(raw=st.binary(max_size=300), flip=st.integers(0, 400), byte=st.integers(0, 255))
def test_mutated_index_bytes_are_one_line_or_inside(tmp_path_factory, raw, flip, byte):
    folder = tmp_path_factory.mktemp("index")
    good = bytearray(json.dumps(GOOD).encode())
    good[flip % len(good)] = byte
    for content in (raw, bytes(good)):
        path = folder / "b.json"
        path.write_bytes(content)
        try:
            sequences = read_benchmark_index(path, ["kitti"], need_pose=True)
        except ReadError as e:
            one_line(e, str(path))
            continue
        assert all(_inside(folder, f.image) and _inside(folder, f.gt_depth) for s in sequences for f in s.frames)


manifest_values = st.one_of(json_values, st.fixed_dictionaries(
    {}, optional={k: st.one_of(st.text(max_size=4), st.integers(), st.none(), st.booleans(), st.floats())
                  for k in ("format", "checkpoint", "checkpoint_sha256", "encoder", "input_size", "precision",
                            "version")}))
MANIFEST_NOW = {"format": 1, "checkpoint": None, "checkpoint_sha256": None, "encoder": "vitt", "input_size": 28,
                "precision": "fp32", "version": "1"}


@FUZZ
@given(doc=manifest_values)
@example(doc=[1, 2])  # the attack
@example(doc=MANIFEST_NOW)
def test_random_manifests_are_accepted_only_when_they_match(tmp_path_factory, doc):
    folder = tmp_path_factory.mktemp("manifest")
    save = folder / "pred"
    save.mkdir()
    _write_json(save / MANIFEST, doc)
    before = snapshot(folder)
    try:
        check_saved_predictions(save, MANIFEST_NOW)
    except BenchmarkError as e:
        one_line(e, str(save))
    else:
        assert isinstance(doc, dict) and all(doc.get(k) == MANIFEST_NOW[k] for k in
                                             ("checkpoint_sha256", "encoder", "input_size", "precision", "version"))
    assert snapshot(folder) == before


def _npy_bytes(shape, descr, body: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


@FUZZ
@given(raw=st.binary(max_size=200),
       shape=st.lists(st.integers(0, 2**40), max_size=3),
       descr=st.sampled_from(["<f4", "<f8", "<i2", "|u1", "|b1", "<c8", "|O", "<U3", "|V4", ">f4"]),
       body=st.binary(max_size=64))
@example(raw=b"", shape=[200000, 200000], descr="<f4", body=b"\x00" * 64)  # the 149 GiB claim
@example(raw=b"", shape=[2, 2], descr="<f8", body=np.array([1, 2, 3, 1e300], "<f8").tobytes())
@example(raw=b"", shape=[2, 2], descr="<f4", body=np.array([1, 2, 3, np.nan], "<f4").tobytes())
@example(raw=b"", shape=[0, 3], descr="<f4", body=b"")
def test_random_prediction_bytes_are_one_line_or_a_finite_2d_array(tmp_path_factory, raw, shape, descr, body):
    folder = tmp_path_factory.mktemp("pred")
    for content in (raw, _npy_bytes(shape, descr, body)):
        path = folder / "p.npy"
        path.write_bytes(content)
        tracemalloc.start()
        try:
            try:
                pred = read_prediction(path)
            except ReadError as e:
                one_line(e, str(path))
                continue
            finally:
                peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20
        assert pred.dtype == np.float32 and pred.ndim == 2 and pred.size > 0 and np.isfinite(pred).all()


results_docs = st.one_of(json_values, st.fixed_dictionaries(
    {"depth": st.dictionaries(st.text(max_size=4), st.fixed_dictionaries(
        {}, optional={"abs_relative_difference": numbers, "delta1_acc": numbers}) | json_values, max_size=2)},
    optional={"tae": st.dictionaries(st.text(max_size=3), st.fixed_dictionaries({}, optional={"mean": numbers}),
                                     max_size=2),
              "alignment": st.sampled_from(["none", "scale", "affine", 3]),
              "meta": st.none() | st.fixed_dictionaries({}, optional={"label": numbers})}))


@FUZZ
@given(doc=results_docs)
@example(doc={"depth": {"kitti": {"abs_relative_difference": 0.1, "delta1_acc": 0.9}}, "meta": {"label": 3}})
def test_random_results_files_are_one_line_or_tabulate(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("results") / "r.json"
    _write_json(path, doc)
    try:
        loaded = load_results(path)
    except ReadError as e:
        one_line(e, str(path))
        return
    assert markdown_table({"a": loaded, "b": loaded}).startswith("| method")


def _cam(K, w2c) -> bytes:
    return (np.float32(DPT_TAG).tobytes() + np.asarray(K, "<f8").tobytes() + np.asarray(w2c, "<f8")[:3].tobytes())


@FUZZ
@given(raw=st.binary(max_size=400), fx=st.floats(allow_nan=True, allow_infinity=True),
       angle=st.floats(-4, 4), stretch=st.sampled_from([1.0, 0.0, 5.0, -1.0]))
@example(raw=b"", fx=50.0, angle=0.3, stretch=5.0)   # a x5 rotation (det 125)
@example(raw=b"", fx=0.0, angle=0.0, stretch=1.0)    # fx = 0
@example(raw=b"", fx=50.0, angle=0.1, stretch=1.0)   # a good camera
def test_random_sintel_cam_files_are_one_line_or_a_valid_camera(tmp_path_factory, raw, fx, angle, stretch):
    folder = tmp_path_factory.mktemp("cam")
    c, s = math.cos(angle), math.sin(angle)
    w2c = np.array([[c, 0, s, 1], [0, 1, 0, 2], [-s, 0, c, 3], [0, 0, 0, 1]]) * [[stretch], [stretch], [stretch], [1]]
    for content in (raw, _cam([[fx, 0, 4], [0, 50, 3], [0, 0, 1]], w2c), raw[:SINTEL_CAM_BYTES]):
        path = folder / "f.cam"
        path.write_bytes(content)
        try:
            K, pose = read_sintel_cam(path)
        except ReadError as e:
            one_line(e, str(path))
            continue
        R = pose[:3, :3]
        assert K[0, 0] > 0 and K[1, 1] > 0 and np.isfinite(pose).all()
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-4) and abs(np.linalg.det(R) - 1) < 1e-4


@FUZZ
@given(text=st.text(alphabet=st.sampled_from("0123456789 .-e\ninfa,\t"), max_size=80), raw=st.binary(max_size=40))
@example(text="1 2 abc\n", raw=b"")                      # the K.txt
@example(text="1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", raw=b"\xff")
@example(text="-inf -inf -inf -inf\n" * 4, raw=b"")     # ScanNet's untracked frame
def test_random_matrix_text_is_one_line_or_a_4x4_matrix(tmp_path_factory, text, raw):
    path = tmp_path_factory.mktemp("txt") / "pose.txt"
    for content in (text.encode(), raw):
        path.write_bytes(content)
        try:
            m = read_matrix(path, (4, 4), "pose")
        except ReadError as e:
            one_line(e, str(path))
            continue
        assert m.shape == (4, 4) and m.dtype == np.float64

