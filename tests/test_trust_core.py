"""Fuzzing the trust boundary's own readers (vda_lightning/trust): random and mutated bytes and values.

Every reader must answer with a one-line `ReadError` naming the input, or a value that honours the caps — never
another exception, never an allocation beyond the stated budget, never a path outside its root. Hypothesis runs a
bounded number of examples, derandomized, without an example database, so the suite is deterministic; the known
attacks of issue 24 are pinned as explicit examples.
"""
from __future__ import annotations

import io
import json
import os
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vda_lightning import trust
from vda_lightning.io import read_depth, read_frame
from vda_lightning.trust import ReadError

FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
BUDGET = 64 << 20  # bytes a refused or tiny input may make Python/numpy allocate while being read


def one_line(exc: BaseException, name: str | None = None) -> None:
    text = str(exc)
    assert "\n" not in text and text.strip(), repr(text)
    if name is not None:
        assert name in text, (name, text)


def within_budget(fn, *args, **kw):
    """fn(*args, **kw) under tracemalloc: (result or the ReadError raised, peak traced bytes)."""
    tracemalloc.start()
    try:
        try:
            out = fn(*args, **kw)
        except ReadError as e:
            out = e
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, peak


def png(width: int, height: int, bit_depth: int = 8, colour: int = 2, idat: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(idat)) + chunk(b"IEND", b"")


def npy(shape: tuple, descr: str = "<f4", data: bytes = b"", fortran: bool = False) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


# -- images ----------------------------------------------------------------------------------------------------

sides = st.integers(0, 2**32 - 1)


@FUZZ
@given(width=sides, height=sides, tail=st.binary(max_size=64))
@example(width=100000, height=100000, tail=b"")     # the 74-byte PNG of issue 24
@example(width=20000, height=20000, tail=b"")
@example(width=0, height=5, tail=b"")
def test_png_headers_are_checked_before_anything_is_decoded(width, height, tail):
    buf = png(width, height) + tail
    out, peak = within_budget(trust.decode_image, buf, None, "frame.png")
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, "frame.png")
        if width * height > trust.max_pixels() or not (width and height):
            assert "VDA_MAX_PIXELS" in str(out) or "empty" in str(out)
    else:  # decoded: within the cap
        assert out.shape[0] * out.shape[1] <= trust.max_pixels()


@FUZZ
@given(buf=st.binary(max_size=512))
@example(buf=b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff")   # a JPEG SOF claiming 65535 x 65535
@example(buf=b"BM" + b"\x00" * 16 + struct.pack("<ii", 1 << 20, 1 << 20))
def test_random_bytes_as_an_image_are_one_line(buf):
    out, peak = within_budget(trust.decode_image, buf, None, "x.webp")
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, "x.webp")
    else:
        assert out.ndim in (2, 3) and out.shape[0] * out.shape[1] <= trust.max_pixels()


def test_a_header_bomb_file_is_refused_by_the_frame_and_depth_readers(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png(100000, 100000))
    assert bomb.stat().st_size < 80
    for read in (read_frame, lambda p: read_depth(p, 1000.0)):
        out, peak = within_budget(read, bomb)
        assert isinstance(out, ReadError) and peak < BUDGET
        one_line(out, str(bomb))
        assert "100000x100000" in str(out) and "VDA_MAX_PIXELS" in str(out)


def test_the_pixel_cap_is_overridable(tmp_path, monkeypatch):
    frame = tmp_path / "f.png"
    import cv2

    frame.write_bytes(cv2.imencode(".png", np.zeros((40, 50, 3), np.uint8))[1].tobytes())
    assert read_frame(frame).shape == (40, 50, 3)
    monkeypatch.setenv("VDA_MAX_PIXELS", "1999")
    with pytest.raises(ReadError, match=r"50x40 pixels, more than the 1,999 allowed \(VDA_MAX_PIXELS\)"):
        read_frame(frame)
    monkeypatch.setenv("VDA_MAX_PIXELS", "lots")
    with pytest.raises(ReadError, match="VDA_MAX_PIXELS='lots': not an integer"):
        read_frame(frame)


# -- arrays ----------------------------------------------------------------------------------------------------

dims = st.integers(-3, 2**31)


@FUZZ
@given(shape=st.lists(dims, max_size=4), descr=st.sampled_from(["<f4", "<f2", "<u2", "|O", "<c16", "V8", "<f8"]),
       data=st.binary(max_size=256), fortran=st.booleans())
@example(shape=[200000, 200000], descr="<f4", data=b"", fortran=False)  # the 149 GiB claim of issue 24
@example(shape=[2, 3], descr="<f4", data=b"\x00" * 24, fortran=False)
@example(shape=[2, 3], descr="|O", data=b"\x00" * 48, fortran=False)
def test_npy_headers_never_size_an_allocation(shape, descr, data, fortran):
    buf = npy(tuple(shape), descr, data, fortran)
    out, peak = within_budget(trust.load_npy, buf, "pred.npy")
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, "pred.npy")
    else:
        assert out.nbytes == len(data) and out.dtype.kind != "O"
        assert list(out.shape) == shape


@FUZZ
@given(buf=st.binary(max_size=300))
@example(buf=b"\x93NUMPY\x01\x00\xff\xff")
@example(buf=b"\x93NUMPY\x03\x00" + b"\x00" * 8)
def test_random_bytes_as_npy_are_one_line(buf):
    out, peak = within_budget(trust.load_npy, buf, "a.npy")
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, "a.npy")


@FUZZ
@given(shape=st.lists(st.integers(0, 2**31), min_size=1, max_size=3), data_len=st.integers(0, 64),
       claimed=st.integers(0, 2**40))
@example(shape=[200000, 200000], data_len=0, claimed=160_000_000_000)
def test_npz_members_must_store_what_their_headers_claim(tmp_path_factory, shape, data_len, claimed):
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    member = npy(tuple(shape), "<f4", b"\x00" * data_len)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("depth.npy", member)
    out, peak = within_budget(trust.load_npz, path)
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, str(path))
    else:
        assert out["depth"].nbytes == data_len


def test_npz_random_bytes_and_the_reader_round_trip(tmp_path):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, depth=np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(read_depth(good), np.arange(12, dtype=np.float32).reshape(3, 4))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ReadError) as e:
        read_depth(bad)
    one_line(e.value, str(bad))


@FUZZ
@given(w=st.integers(-5, 2**31 - 1), h=st.integers(-5, 2**31 - 1), n=st.integers(0, 64))
@example(w=200000, h=200000, n=0)
@example(w=4, h=3, n=12)
def test_sintel_dpt_headers_are_checked_against_the_file(tmp_path_factory, w, h, n):
    path = tmp_path_factory.mktemp("dpt") / "d.dpt"
    path.write_bytes(np.float32(202021.25).tobytes() + np.int32(w).tobytes() + np.int32(h).tobytes()
                     + np.zeros(n, "<f4").tobytes())
    out, peak = within_budget(read_depth, path)
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, str(path))
    else:
        assert out.shape == (h, w) and w * h == n


@FUZZ
@given(kind=st.sampled_from([b"Pf", b"PF", b"P6", b""]), size=st.text(max_size=20), scale=st.text(max_size=12),
       n=st.integers(0, 64))
@example(kind=b"Pf", size="200000 200000", scale="-1", n=0)
@example(kind=b"Pf", size="4 3", scale="-1.0", n=12)
def test_pfm_headers_are_checked_against_the_file(tmp_path_factory, kind, size, scale, n):
    path = tmp_path_factory.mktemp("pfm") / "d.pfm"
    path.write_bytes(kind + b"\n" + size.encode("utf-8", "replace") + b"\n" + scale.encode("utf-8", "replace")
                     + b"\n" + np.zeros(n, "<f4").tobytes())
    out, peak = within_budget(read_depth, path)
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, str(path))
    else:
        assert out.size == n


def test_hdf5_dataset_shapes_are_checked_before_reading(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "d.dsp5"
    with h5py.File(path, "w") as f:
        f.create_dataset("disparity", shape=(200000, 200000), dtype="f4", chunks=(16, 16))  # sparse: tiny file
        f.create_dataset("names", data=np.array([b"a", b"b"], dtype="S1"))
    assert path.stat().st_size < 1 << 20
    out, peak = within_budget(trust.load_hdf5, path, "disparity")
    assert isinstance(out, ReadError) and peak < BUDGET and "VDA_MAX_ARRAY_BYTES" in str(out)
    one_line(out, str(path))
    with pytest.raises(ReadError, match="holds |S1, not numbers"):
        trust.load_hdf5(path, "names")
    with pytest.raises(ReadError, match="has no 'depth' dataset"):
        trust.load_hdf5(path, "depth")
    garbage = tmp_path / "g.hdf5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(200))
    with pytest.raises(ReadError) as e:
        trust.load_hdf5(garbage, "dataset")
    one_line(e.value, str(garbage))


def test_exr_data_windows_are_checked_before_reading(tmp_path, monkeypatch):
    OpenEXR = pytest.importorskip("OpenEXR")
    path = tmp_path / "z.exr"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"Z": np.ones((30, 40), np.float32)}).write(str(path))
    assert read_depth(path).shape == (30, 40)
    monkeypatch.setenv("VDA_MAX_PIXELS", "1000")
    with pytest.raises(ReadError, match=r"40x30 pixels, more than the 1,000 allowed"):
        read_depth(path)
    (tmp_path / "bad.exr").write_bytes(b"v/1\x01" + os.urandom(100))
    with pytest.raises(ReadError) as e:
        read_depth(tmp_path / "bad.exr")
    one_line(e.value, "bad.exr")


# -- files and names -------------------------------------------------------------------------------------------

def test_only_regular_files_are_opened(tmp_path):
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    for read in (read_frame, read_depth, lambda p: trust.read_json(p)):
        with pytest.raises(ReadError, match="is a FIFO, not a regular file"):
            read(fifo)  # would block for ever if it were opened
    with pytest.raises(ReadError, match="is a folder"):
        trust.read_bytes(tmp_path)
    with pytest.raises(ReadError, match=r"/dev/zero: .* is a device"):
        trust.read_bytes("/dev/zero")


names = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b)


@FUZZ
@given(raw=names)
@example(raw=b"bad\xff\xfe.mp4")
@example(raw=b"00001\xff.png")
@example(raw=b"new\nline.png")
def test_names_are_shown_on_one_line_and_checked(tmp_path_factory, raw):
    name = os.fsdecode(raw)
    shown = trust.display(name)
    assert shown.isprintable() and "\n" not in shown
    try:
        ok = trust.check_name(name) == name
    except ReadError as e:
        one_line(e, shown)
        ok = False
    valid = not any(0xDC80 <= ord(c) <= 0xDCFF for c in name) and not any(ord(c) < 32 or ord(c) == 127
                                                                            for c in name)
    assert ok == valid
    if raw in (b".", b".."):
        return
    path = tmp_path_factory.mktemp("names") / name  # a real file: read through Python, OpenCV never sees the name
    path.write_bytes(png(3, 2))
    with pytest.raises(ReadError) as e:  # the IDAT is empty: decoding fails, but in one line, not a segfault
        read_frame(path)
    one_line(e.value, shown)


@FUZZ
@given(rel=st.one_of(st.text(max_size=30), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2),
                     st.lists(st.sampled_from(["..", ".", "a", "b", "/", "~"]), max_size=8).map("/".join)))
@example(rel="../../../../outside/img.png")
@example(rel="/etc/passwd")
@example(rel="a/../../b")
@example(rel="a/../b.png")
def test_confined_paths_never_leave_their_root(tmp_path_factory, rel):
    root = tmp_path_factory.mktemp("root")
    try:
        path = trust.confine(root, rel, "image")
    except ReadError as e:
        one_line(e)
        return
    resolved = os.path.normpath(os.path.join(root, path))
    assert os.path.commonpath([str(root), resolved]) == str(root) and resolved != str(root)


def test_an_output_path_cannot_escape_through_a_symlink(tmp_path):
    root, outside = tmp_path / "out", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    assert trust.confine_output(root, "a/b.npy") == root / "a" / "b.npy"
    with pytest.raises(ReadError, match="through a symlink"):
        trust.confine_output(root, "link/img.npy")


# -- documents ---------------------------------------------------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=4), max_leaves=20)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
@example(raw=b'{"a": NaN}')
@example(raw=b"[" * 5000)
@example(raw=b"\xff\xfe{}")
def test_json_is_parsed_with_its_limits(raw):
    out, peak = within_budget(trust.parse_json, raw, "doc.json")
    assert peak < BUDGET
    if isinstance(out, ReadError):
        one_line(out, "doc.json")
    else:
        assert json.loads(json.dumps(out)) == out  # standard JSON only: no NaN/Infinity got through


def test_json_size_cap_is_checked_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    big.write_text(json.dumps(list(range(2000))))
    monkeypatch.setenv("VDA_MAX_JSON_BYTES", "1000")
    with pytest.raises(ReadError, match=r"big.json: .* bytes, more than the 1,000 allowed"):
        trust.read_json(big)


def test_schemas_are_strict_and_one_line():
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field

    class Position(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        consumed: Annotated[int, Field(ge=0)]
        url: str

    assert trust.validate(Position, {"consumed": 3, "url": "a.tar"}, "x").consumed == 3
    for bad, where in (({"consumed": "abc", "url": "a"}, "consumed"), ({"consumed": True, "url": "a"}, "consumed"),
                       ({"consumed": -1, "url": "a"}, "consumed"), ({"url": "a"}, "consumed"),
                       ({"consumed": 1, "url": "a", "x": 1}, "x"), ([1, 2], "the document")):
        with pytest.raises(ReadError) as e:
            trust.validate(Position, bad, "last.ckpt: data state")
        one_line(e.value, "last.ckpt: data state")
        assert where in str(e.value)


@FUZZ
@given(st.dictionaries(st.text(max_size=20), st.none() | st.integers() | st.text(max_size=5), min_size=1, max_size=3))
@example({"evil\nkey\r\x1b[2J": 1})  # a key is shown in the error: it must not break the one line
def test_a_schema_error_is_one_line_whatever_the_keys_say(doc):
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field

    class Counts(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        n: Annotated[int, Field(ge=0)] = 0

    try:
        trust.validate(Counts, doc, "last.ckpt: counters")
    except ReadError as e:
        one_line(e, "last.ckpt: counters")
    else:
        assert set(doc) <= {"n"}


# -- URLs --------------------------------------------------------------------------------------------------------

@FUZZ
@given(url=st.one_of(st.text(max_size=40), st.integers(), st.none(),
                     st.sampled_from(["pipe:touch X; cat a.tar", "https://x/a.tar", "s3://b/a.tar", "a.tar",
                                      "file:a.tar", "/data/val-000.tar"])))
def test_a_url_from_a_file_must_be_one_the_user_configured(url):
    allowed = frozenset({"/data/train-000.tar", "/data/train-001.tar", "pipe:curl -s http://h/train.tar"})
    try:
        assert trust.check_url_from_file(url, allowed, "last.ckpt") in allowed
    except ReadError as e:
        one_line(e, "last.ckpt")
        assert url not in allowed


def test_schemes():
    assert trust.scheme("pipe:cat x") == "pipe" and trust.is_remote("pipe:cat x")
    assert trust.is_remote("https://h/a.tar") and trust.is_remote("gs://b/a.tar")
    assert not trust.is_remote("/a/b.tar") and not trust.is_remote("file:/a/b.tar")
    assert not trust.is_remote("C:/data/a.tar") and not trust.is_remote("shards/{000..009}.tar")


def test_trust_is_cheap_to_import():
    import subprocess
    import sys

    code = ("import sys, vda_lightning.trust; "
            "print(sorted(m for m in ('torch', 'cv2', 'pydantic', 'PIL', 'h5py', 'OpenEXR') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def test_the_decoders_read_what_the_writers_wrote(tmp_path):
    import cv2

    frame = (np.arange(5 * 7 * 3) % 251).astype(np.uint8).reshape(5, 7, 3)
    path = tmp_path / "f.bmp"
    path.write_bytes(cv2.imencode(".bmp", frame[..., ::-1])[1].tobytes())
    np.testing.assert_array_equal(read_frame(path), frame)
    buf = io.BytesIO()
    np.save(buf, np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(trust.load_npy(buf.getvalue()), np.eye(3, dtype=np.float32))
