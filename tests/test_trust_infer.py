"""The trust boundary of `vda infer` (issue 24): inputs, their names, frame and stream headers, intrinsics files and
option values come from outside, and each is refused in one line naming it while the other inputs run.

One batch runs the attacks of the issue together through the real command in a child process (a regression may
segfault or hang, which must not take pytest with it): a 65-byte PNG that declares 100000 x 100000 pixels, a
1.1 MB all-zero 20000 x 20000 PNG as a first frame, a video whose stream header says 16000 x 16000, a FIFO, a file
whose name is not UTF-8, then a good clip. Each bad input is one line, the good clip runs, the exit status is 1,
nothing partial is left, and the child's peak RSS (measured by a wrapper process whose only child it is) stays
under 1 GiB. Hypothesis feeds random and mutated bytes to the frame reader (FolderSource, and through `run_one`
to the writers), random intrinsics files to the camera reader, and random strings to the option types.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from vda_lightning.cli import options
from vda_lightning.inference.camera import CameraError, camera_from_options, read_intrinsics
from vda_lightning.inference.cli import build_parser, run_one
from vda_lightning.inference.frame_sources import FolderSource, InputError, open_source
from vda_lightning.io import ReadError, iter_video_frames, probe_video
from vda_lightning.trust import display, max_pixels

from tests.fakes.videos import write_video

ROOT = Path(__file__).resolve().parents[1]
GiB = 1 << 30
BATCH_TIMEOUT_S = 420  # the whole batch on a loaded 2-core machine takes ~30 s; a FIFO would block for ever
FUZZ = settings(max_examples=100, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- crafted files ------------------------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zeros_zlib(row_bytes: int, rows: int, block_rows: int = 256) -> bytes:
    """A zlib stream of rows * row_bytes zero bytes in a second: one compressed block repeated (Z_FULL_FLUSH makes
    each block's output independent of the ones before) and the Adler-32 of n zeros, ((n mod 65521) << 16) | 1."""
    z = zlib.compressobj(9)
    block = z.compress(bytes(row_bytes * block_rows)) + z.flush(zlib.Z_FULL_FLUSH)  # zlib header + block
    again = z.compress(bytes(row_bytes * block_rows)) + z.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(rows, block_rows)
    tail = z.compress(bytes(row_bytes * rest)) + z.flush(zlib.Z_FINISH)
    total = row_bytes * rows
    return block + again * (n - 1) + tail[:-4] + struct.pack(">I", ((total % 65521) << 16) | 1)


def zero_png(width: int, height: int, rows: int | None = None) -> bytes:
    """An 8-bit RGB PNG declaring width x height whose pixels are all zero (`rows` of them stored: None = all)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zeros_zlib(1 + 3 * width, height) if rows is None else zlib.compress(bytes((1 + 3 * width) * rows))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def y4m_header(width: int, height: int, payload: int = 64) -> bytes:
    """A YUV4MPEG2 video whose stream header says width x height (FFmpeg takes sizes up to ~2^28 pixels)."""
    return f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + bytes(payload)


def frame_png(height: int = 6, width: int = 8, seed: int = 0) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".png", rgb)[1].tobytes()


def frame_jpeg(height: int = 6, width: int = 8, seed: int = 0) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", rgb)[1].tobytes()


BOMB_PNG = zero_png(100000, 100000, rows=0)  # the "74-byte PNG declaring 100000²" (ours: 65 bytes)


# -- the batch: every file attack of the issue through `vda infer`, in a child process ------------------------------

WRAPPER = """\
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(f"child peak RSS KiB: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(code)
"""


# `vda infer` as `python -m vda_lightning infer` runs it, ended with os._exit once it returns: the peak measured is
# the command's own work (imports, model, inputs), not the ~125 MiB of torch's libraries that interpreter teardown
# pages back in after everything is done.
COMMAND = """\
import os, sys
from vda_lightning.cli import main
code = main(sys.argv[1:])
sys.stdout.flush(); sys.stderr.flush()
os._exit(code)
"""


@pytest.fixture(scope="module")
def batch(tmp_path_factory, tiny_checkpoints):
    d = tmp_path_factory.mktemp("trust_batch")
    frames = np.random.default_rng(0).integers(0, 256, (4, 28, 42, 3), dtype=np.uint8)
    good = write_video(d / "two.mp4", frames)
    (d / "bomb").mkdir()
    (d / "bomb" / "000000.png").write_bytes(BOMB_PNG)
    (d / "zeros").mkdir()
    (d / "zeros" / "000000.png").write_bytes(zero_png(20000, 20000))
    (d / "zeros" / "000001.png").write_bytes(frame_png(28, 42))
    (d / "huge.y4m").write_bytes(y4m_header(16000, 16000))
    fifo = d / "fifo.mp4"
    os.mkfifo(fifo)
    bad_name = d / os.fsdecode(b"bad\xff\xfe.mp4")
    bad_name.write_bytes(good.read_bytes())
    inputs = {"bomb": d / "bomb", "zeros": d / "zeros", "huge": d / "huge.y4m", "fifo": fifo, "bad_name": bad_name,
              "good": good}
    out = d / "out"
    command = [sys.executable, "-c", WRAPPER, sys.executable, "-c", COMMAND, "infer",
               *map(str, inputs.values()), "--checkpoint", str(tiny_checkpoints["video"]), "--input-size", "28",
               "--save", "png16,npz", "--output-dir", str(out), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDA_MAX_")}  # the documented default caps
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out_text, err = proc.communicate(timeout=BATCH_TIMEOUT_S)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the wrapper's group: the wrapper and the vda infer it started
        out_text, err = proc.communicate()
        hung = True
    err = (err + out_text).decode("utf-8", "backslashreplace")  # the summary line is on stdout
    rss = [int(line.rsplit(" ", 1)[1]) for line in err.splitlines() if line.startswith("child peak RSS KiB:")]
    return SimpleNamespace(code=proc.returncode, hung=hung, err=err, inputs=inputs, out=out,
                           rss_bytes=rss[0] * 1024 if rss else None,
                           errors=[line for line in err.splitlines() if line.startswith("vda infer: error:")])


def lines_naming(batch, path) -> list[str]:
    return [line for line in batch.errors if display(path) in line]


def test_header_bombs_are_one_line_each_and_the_child_stays_under_1_gib(batch):
    assert not batch.hung and batch.code == 1, batch.err[-3000:]
    bomb, = lines_naming(batch, batch.inputs["bomb"] / "000000.png")
    assert "100000x100000 pixels" in bomb and "VDA_MAX_PIXELS" in bomb
    zeros, = lines_naming(batch, batch.inputs["zeros"] / "000000.png")
    assert "20000x20000 pixels" in zeros and "VDA_MAX_PIXELS" in zeros
    huge, = lines_naming(batch, batch.inputs["huge"])
    assert "video stream: its header says 16000x16000 pixels" in huge and "VDA_MAX_PIXELS" in huge
    # decoding either PNG would take 1.2 GB or more on top of the ~0.8 GiB of torch and the model (the same
    # command on the good clip alone peaks at 0.90-0.95 GiB by this measure: torch's interpreter teardown pages in
    # ~0.12 GiB of its libraries after the work is done)
    print(f"child peak RSS {batch.rss_bytes / 2**20:.0f} MiB")
    assert batch.rss_bytes is not None and batch.rss_bytes < GiB


def test_a_fifo_among_the_inputs_is_one_line_and_does_not_hang(batch):
    assert not batch.hung, f"vda infer still ran after {BATCH_TIMEOUT_S} s: {batch.err[-2000:]}"
    fifo, = lines_naming(batch, batch.inputs["fifo"])
    assert fifo.endswith("input is a FIFO, not a regular file")


def test_a_name_that_is_not_utf8_is_refused_and_the_next_input_runs(batch):
    assert batch.code == 1, f"exit status {batch.code} (-11: the segfault of issue 24): {batch.err[-2000:]}"
    bad, = lines_naming(batch, batch.inputs["bad_name"])
    assert "bad\\xff\\xfe.mp4: input name is not valid UTF-8" in bad and "rename it" in bad


def test_only_the_good_input_is_written_and_nothing_partial_is_left(batch):
    assert len(batch.errors) == 5, batch.errors  # one line per bad input, no traceback
    assert "Traceback" not in batch.err
    assert "vda infer: 1/6 inputs, 4 frames" in batch.err
    assert sorted(p.name for p in batch.out.iterdir()) == ["two_depths.npz", "two_png16"]
    assert len(list((batch.out / "two_png16").glob("*.png"))) == 4
    left = [p for p in batch.out.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
    assert left == []


# -- the readers in process -----------------------------------------------------------------------------------------

def test_probe_checks_the_stream_size_before_decoding(tmp_path, monkeypatch):
    video = tmp_path / "huge.y4m"
    video.write_bytes(y4m_header(16000, 16000))
    with pytest.raises(ReadError) as e:
        probe_video(video)
    assert str(e.value) == (f"{video}: video stream: its header says 16000x16000 pixels, more than the "
                            f"{max_pixels():,} allowed (VDA_MAX_PIXELS)")
    clip = write_video(tmp_path / "clip.mp4", np.zeros((2, 28, 42, 3), np.uint8))
    monkeypatch.setenv("VDA_MAX_PIXELS", str(28 * 42 - 1))  # decoded frames are checked too (a stream may grow)
    with pytest.raises(ReadError, match=r"clip\.mp4: frame 0: its header says 42x28 pixels"):
        list(iter_video_frames(clip))
    with pytest.raises(InputError, match=r"clip\.mp4: video stream: its header says 42x28 pixels"):
        open_source(clip)


def test_a_fifo_or_a_device_is_refused_before_anything_opens_it(tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"clip\.mp4: input is a FIFO, not a regular file$"):
        open_source(fifo)  # would block for ever in the demuxer's open
    with pytest.raises(InputError, match=r"/dev/null: input is a device, not a regular file$"):
        open_source("/dev/null")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "000000.png").write_bytes(frame_png())
    os.symlink("/dev/zero", frames / "000001.png")  # a frame that never ends: not listed as a frame file
    assert len(list(open_source(frames))) == 1


def test_a_header_bomb_frame_is_refused_by_the_folder_source_without_decoding(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "000000.png").write_bytes(BOMB_PNG)
    with pytest.raises(InputError) as e:
        list(FolderSource(folder))
    assert str(e.value).startswith(f"{folder / '000000.png'}: its header says 100000x100000 pixels")


def npy_header_only(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """A `.npy` header that claims `shape` with no data behind it (a 149 GiB claim in 128 bytes)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_every_writer_takes_an_output_folder_whose_name_is_not_utf8(tmp_path):
    """No native library gets a path: PNG, EXR, PLY, npz and mp4 are written through Python files, so an output
    folder the user named in bytes that are not UTF-8 (allowed: only input names become output names) works."""
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:06d}.png").write_bytes(frame_png(seed=i))
    out = tmp_path / os.fsdecode(b"out\xff")
    out.mkdir()
    count = run_one(StubRunner(), open_source(folder, max_res=-1), out, "clip",
                    ["npz", "png16", "exr", "ply", "vis"], True, camera_from_options(None, None, None),
                    progress=False, threads=False)
    assert count == 3
    assert sorted(p.name for p in out.iterdir()) == ["clip_depths.npz", "clip_exr", "clip_ply", "clip_png16",
                                                     "clip_vis.mp4"]
    assert probe_video(out / "clip_vis.mp4").frames == 3
    png = cv2.imdecode(np.fromfile(out / "clip_png16" / "000002.png", np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (6, 8)


def test_max_len_zero_is_refused_by_the_api_too(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "000000.png").write_bytes(frame_png())
    with pytest.raises(ValueError, match="max_len must be >= 1, or negative for all frames; got 0"):
        open_source(folder, max_len=0)


def intrinsics_file(tmp_path, name: str, content) -> Path:
    path = tmp_path / name
    if isinstance(content, str) and content == "npy header claiming 200000x200000":
        content = npy_header_only((200000, 200000))
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=True)
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("name, content, says", [
    ("K.txt", "nan 0 20\n0 30 14\n0 0 1\n", "intrinsics hold NaN/Inf entries"),
    ("K.txt", "1e999 0 20\n0 30 14\n0 0 1\n", "intrinsics hold NaN/Inf entries"),
    ("K.txt", "0 0 20\n0 30 14\n0 0 1\n", "must have positive fx, fy; got fx 0, fy 30"),
    ("K.txt", "1 2 abc\n", "not a readable intrinsics file"),
    ("K.txt", "30 0 20\n0 30 14\n", "3x3 or 4x4 matrix of numbers; got shape (2, 3)"),
    ("K.txt", b"\xff\xfe\x00", "not UTF-8 text, .npy or .json"),
    ("K.txt", "1e300 0 0\n0 1e300 0\n0 0 1\n", "is no camera"),
    ("K.npy", np.array([{"fx": 1}], dtype=object), ".npy holds Python objects (pickles are not read)"),
    ("K.npy", np.array([["a", "b", "c"]] * 3), "3x3 or 4x4 matrix of numbers; got shape (3, 3) (<U1)"),
    ("K.npy", "npy header claiming 200000x200000", "(VDA_MAX_ARRAY_BYTES)"),
    ("K.json", '{"fx": NaN, "fy": 30, "cx": 20, "cy": 14}', "not valid JSON (NaN is not a JSON number"),
    ("K.json", '{"fx": 1e999, "fy": 30, "cx": 20, "cy": 14}', "fx: Input should be a finite number"),
    ("K.json", '{"fx": "30", "fy": 30, "cx": 20, "cy": 14}', "fx: Input should be a valid number"),
    ("K.json", '{"fx": 0, "fy": 30, "cx": 20, "cy": 14}', "fx: Input should be greater than 0"),
    ("K.json", '{"fx": 30, "fy": 30, "cx": 20}', "cy: Field required"),
    ("K.json", '{"fx": 30, "fy": 30, "cx": 20, "cy": 14, "width": 42}', "gives width without height"),
    ("K.json", '{"K": [[30, 0, 20], [0, 30], [0, 0, 1]]}', "K.1: List should have at least 3 items"),
    ("K.json", '{"K": [[30, 0, 20], [0, 30, 14, 0], [0, 0, 1]]}', "K: rows of different lengths [3, 4, 3]"),
    ("K.json", "[30, 30, 20, 14]", "must be an object {fx, fy, cx, cy} or {K}, got list"),
    ("K.json", "[" * 100000, "JSON nested too deeply"),
])
def test_intrinsics_files_are_read_through_the_trust_boundary(tmp_path, name, content, says):
    path = intrinsics_file(tmp_path, name, content)
    with pytest.raises(CameraError) as e:
        read_intrinsics(path)
    assert str(e.value).startswith(f"{path}: ") and says in str(e.value) and "\n" not in str(e.value)


def test_an_intrinsics_fifo_or_oversized_file_is_refused(tmp_path):
    fifo = tmp_path / "K.txt"
    os.mkfifo(fifo)
    with pytest.raises(CameraError, match=r"K\.txt: intrinsics file is a FIFO, not a regular file"):
        read_intrinsics(fifo)
    big = tmp_path / "big.txt"
    big.write_text("1 " * (1 << 20))
    with pytest.raises(CameraError, match=r"big\.txt: intrinsics file is 2,097,152 bytes, more than the 1,048,576"):
        read_intrinsics(big)


def test_valid_intrinsics_still_read(tmp_path):
    cam = read_intrinsics(intrinsics_file(tmp_path, "K.json", json.dumps(
        {"fx": 30, "fy": 31.5, "cx": 20, "cy": 14, "width": 42, "height": 28, "source": "camera.json"})))
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.size) == (30, 31.5, 20, 14, (28, 42))
    cam = read_intrinsics(intrinsics_file(tmp_path, "K4.npy", np.diag([30.0, 30.0, 1.0, 1.0])))
    assert (cam.fx, cam.fy) == (30, 30)
    cam = read_intrinsics(intrinsics_file(tmp_path, "K.txt", "# fx 0 cx\n30 0 20\n0 30 14\n0 0 1\n"))
    assert (cam.fx, cam.cx, cam.cy) == (30, 20, 14)


@pytest.mark.parametrize("fx, fy", [(math.nan, None), (math.inf, None), (None, -math.inf), (0.0, None), (1.0, -2.0)])
def test_the_camera_api_refuses_focal_lengths_that_are_not_finite_positive(fx, fy):
    with pytest.raises(CameraError, match="must be finite and positive"):
        camera_from_options(fx, fy, None)


# -- Hypothesis: the frame reader ---------------------------------------------------------------------------------

def _with_png_size(width: int, height: int, fix_crc: bool) -> bytes:
    png = bytearray(frame_png())
    png[16:24] = struct.pack(">II", width, height)
    if fix_crc:
        png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def _with_jpeg_size(width: int, height: int) -> bytes:
    jpg = bytearray(frame_jpeg())
    i = 2
    while jpg[i + 1] not in (0xC0, 0xC2):  # walk the segments to the frame header (SOF0 / SOF2)
        i += 2 + struct.unpack(">H", jpg[i + 2:i + 4])[0]
    jpg[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(jpg)


def _flipped(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in flips:
        out[pos % len(out)] = value
    return bytes(out)


sides = st.one_of(st.integers(0, 70), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1))
frame_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(_with_png_size, sides, sides, st.booleans()),
    st.builds(_with_jpeg_size, st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)),
    st.builds(_flipped, st.sampled_from([frame_png(), frame_jpeg()]),
              st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8)),
    st.builds(lambda data, n: data[:n], st.sampled_from([frame_png(), frame_jpeg()]), st.integers(0, 400)),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _one_line_naming(error: Exception, path: Path) -> None:
    text = str(error)
    assert "\n" not in text and text.startswith(display(path)), text


@FUZZ
@given(data=frame_bytes, suffix=st.sampled_from([".png", ".jpg", ".bmp", ".webp"]))
@example(data=BOMB_PNG, suffix=".png")
@example(data=zero_png(20000, 20000, rows=1), suffix=".png")
@example(data=b"", suffix=".png")
@example(data=b"\x89PNG\r\n\x1a\n", suffix=".png")
def test_fuzzed_frame_files_give_frames_or_one_line_naming_the_file(scratch, data, suffix):
    folder = scratch / "frames"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    frame = folder / f"000000{suffix}"
    frame.write_bytes(data)
    try:
        frames = list(FolderSource(folder, max_res=-1))
    except InputError as e:
        _one_line_naming(e, frame)
        event(f"refused: {str(e).split(': ', 1)[1][:24]}")
        return
    event("decoded")
    assert len(frames) == 1 and frames[0].dtype == np.uint8 and frames[0].shape[2] == 3
    assert frames[0].shape[0] * frames[0].shape[1] <= max_pixels()


class StubRunner:
    """What `run_one` needs of a runner, without a network: depth = the frame's red channel."""

    model = SimpleNamespace(config=SimpleNamespace())
    device = "cpu"

    @staticmethod
    def reads(frames):  # one frame per batch: reads -> compute -> finish, as the real runners stage it
        yield from frames

    @staticmethod
    def compute(frame):
        return frame

    @staticmethod
    def finish(frame):
        return [frame[..., 0].astype(np.float32) + 1.0]

    @classmethod
    def run(cls, frames):
        for frame in cls.reads(frames):
            yield from cls.finish(cls.compute(frame))


@settings(FUZZ, max_examples=40)
@given(data=frame_bytes)
@example(data=BOMB_PNG)
@example(data=frame_png(seed=1))  # a good second frame: both written
def test_a_refused_frame_leaves_no_output_of_its_input(scratch, data):
    folder, out = scratch / "clip", scratch / "out"
    for d in (folder, out):
        d.mkdir(exist_ok=True)
        for old in d.iterdir():
            old.unlink()
    (folder / "000000.png").write_bytes(frame_png())
    (folder / "000001.png").write_bytes(data)
    camera = camera_from_options(None, None, None)
    try:
        count = run_one(StubRunner(), open_source(folder, max_res=-1), out, "clip", ["npz", "png16"], False, camera,
                        progress=False, threads=False)
    except InputError as e:
        _one_line_naming(e, folder / "000001.png")
        assert list(out.iterdir()) == []  # no npz, no png16 folder, no spool, no temporary
        event("refused")
        return
    event("written")
    assert count == 2 and sorted(p.name for p in out.iterdir()) == ["clip_depths.npz", "clip_png16"]
    for p in out.iterdir():
        if p.is_dir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
        else:
            p.unlink()


# -- Hypothesis: intrinsics files ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12)
numbers = st.one_of(st.floats(0.5, 5000), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=4),
                    st.booleans(), st.none())
camera_docs = st.one_of(
    st.fixed_dictionaries({"fx": numbers, "fy": numbers, "cx": numbers, "cy": numbers},
                          optional={"width": numbers, "height": numbers}),
    st.fixed_dictionaries({"K": st.lists(st.lists(numbers, max_size=5), max_size=5)}),
    json_values,
)


def _json_text(doc) -> str:
    return json.dumps(doc)  # NaN / Infinity become the non-standard tokens an attacker would write


def _npy(shape: tuple[int, ...], dtype: str, fill: float) -> bytes:
    buf = io.BytesIO()
    with np.errstate(invalid="ignore"):  # nan or inf cast to an integer type: whatever it gives is a test value
        np.save(buf, np.full(shape, fill).astype(dtype))
    return buf.getvalue()


npy_files = st.one_of(
    st.builds(_npy, st.lists(st.integers(0, 5), max_size=3).map(tuple),
              st.sampled_from(["<f8", "<f4", ">f8", "<i4", "u1", "<c16", "?", "<U3", "<M8[s]"]), st.floats()),
    st.builds(_flipped, st.builds(_npy, st.just((3, 3)), st.just("<f8"), st.just(30.0)),
              st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6)),
    st.binary(max_size=200),
)
intrinsics = st.one_of(
    st.tuples(st.just("K.json"), camera_docs.map(_json_text).map(str.encode)),
    st.tuples(st.just("K.json"), st.binary(max_size=100)),
    st.tuples(st.just("K.npy"), npy_files),
    st.tuples(st.just("K.txt"), st.text(alphabet="0123456789.-+eEnaif \n\t#,x", max_size=80).map(str.encode)),
    st.tuples(st.just("K.txt"), st.binary(max_size=100)),
)


@FUZZ
@given(file=intrinsics)
@example(file=("K.txt", b"nan 0 20\n0 30 14\n0 0 1\n"))
@example(file=("K.json", b'{"fx": NaN, "fy": 1, "cx": 0, "cy": 0}'))
@example(file=("K.json", b'{"fx": 1, "fy": 1, "cx": 0, "cy": 0, "width": 0, "height": 5}'))
@example(file=("K.npy", _npy((3, 3), "<U3", 1.0)))
@example(file=("K.json", b'{"K": [[30, 0, 20], [0, 30, 14], [0, 0, 1]], "width": 42, "height": 28}'))
@example(file=("K.txt", b"30 0 20\n0 30 14\n0 0 1\n"))
def test_fuzzed_intrinsics_give_a_finite_camera_or_one_line_naming_the_file(scratch, file):
    name, data = file
    path = scratch / name
    path.write_bytes(data)
    try:
        cam = read_intrinsics(path)
    except CameraError as e:
        _one_line_naming(e, path)
        event(f"refused {name}")
        return
    event(f"read {name}")
    assert all(math.isfinite(v) for v in (cam.fx, cam.fy, cam.cx, cam.cy)) and cam.fx > 0 and cam.fy > 0
    assert cam.size is None or min(cam.size) >= 1


# -- Hypothesis: option values -------------------------------------------------------------------------------------

option_text = st.one_of(st.text(max_size=12), st.floats().map(str), st.integers(-10**6, 10**6).map(str),
                        st.sampled_from(["nan", "inf", "-inf", "Infinity", "1e309", "0", "-0", "-1", "-2", "1_0",
                                         " 5 ", "0x10", "1e3", "٣"]))
CONTRACTS = {  # option type -> what a value it returns must satisfy
    options.positive_float: lambda v: isinstance(v, float) and math.isfinite(v) and v > 0,
    options.frame_count: lambda v: isinstance(v, int) and (v == -1 or v >= 1),
    options.frame_rate: lambda v: isinstance(v, float) and math.isfinite(v) and v <= options.MAX_FPS,
    options.positive_int: lambda v: isinstance(v, int) and v > 0,
    options.input_size: lambda v: isinstance(v, int) and v > 0 and (v % 14 == 0 or v % 16 == 0),  # 16: a DINOv3 patch
}


@FUZZ
@given(text=option_text)
@example(text="nan")
@example(text="0")
def test_option_types_return_what_they_document_or_a_usage_error(text):
    for parse, holds in CONTRACTS.items():
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as e:
            assert "\n" not in str(e)
            continue
        assert holds(value), (parse.__name__, text, value)


@settings(FUZZ, max_examples=50)
@given(text=option_text, flag=st.sampled_from(["--focal-length-x", "--focal-length-y", "--max-len", "--target-fps"]))
@example(text="nan", flag="--focal-length-x")
@example(text="0", flag="--max-len")
def test_vda_infer_parses_an_option_value_or_exits_2_with_a_usage_line(text, flag):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(["clip.mp4", "--checkpoint", "m.pth", f"{flag}={text}"])
        except SystemExit as e:
            assert e.code == 2 and err.getvalue().startswith("usage: ")
            assert f"argument {flag}: " in err.getvalue().splitlines()[-1]
            return
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    assert math.isfinite(value) and (value > 0 if "focal" in flag else True)
    assert flag != "--max-len" or value == -1 or value >= 1
