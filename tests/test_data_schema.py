"""Shard metadata that lies: every KEY.json is checked against one schema before any value is used or any buffer
is sized from it. A fuzz pass mutates valid samples (drop / rename / retype every key, shorten / lengthen arrays,
lie about sizes in the json and in member headers); the stream ends normally, every bad sample is counted under a
reason, every good sample comes out intact, and nothing is allocated beyond the configured size limit."""
from __future__ import annotations

import io
import json
import logging
import re
import struct
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule
from vda_lightning.data.format import (
    META_SCHEMA,
    SKIP_REASONS,
    ClipRecord,
    SampleError,
    decode_members,
    encode_record,
    sample_key,
)
from vda_lightning.data.streams import SkipCounters, decode_stream, iter_tar_samples

ROOT = Path(__file__).resolve().parents[1]
T, H, W = 3, 14, 28


def record(i: int, encoding: str = "png16") -> ClipRecord:
    rng = np.random.default_rng(i)
    K = np.array([[20.0, 0, 13.5], [0, 20.0, 6.5], [0, 0, 1]])
    poses = np.repeat(np.eye(4)[None], T, 0)
    poses[:, 0, 3] = np.arange(T)
    return ClipRecord(rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8), "fuzz", f"s{i}", list(range(T)),
                      depth=rng.uniform(1, 5, (T, H, W)).astype(np.float32),
                      mask=rng.random((T, H, W)) > 0.2, K=K, poses=poses, key=sample_key("fuzz", f"s{i}", 0))


def good_members(i: int, encoding: str = "png16") -> dict[str, bytes]:
    return encode_record(record(i), depth_encoding=encoding)


def with_meta(members: dict, change) -> dict:
    meta = json.loads(members["json"])
    change(meta)
    return {**members, "json": json.dumps(meta).encode()}


def wrong_type(value):
    """A value of another JSON type than `value`'s."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 7
    if isinstance(value, list):
        return {"0": value}
    if isinstance(value, dict):
        return [value]
    return "x"  # null-able keys (K, poses)


def _drop(key):
    return lambda m: m.pop(key)


def _rename(key):
    return lambda m: m.__setitem__(key + "_renamed", m.pop(key))


def _retype(key):
    return lambda m: m.__setitem__(key, wrong_type(m[key]))


def _sub(key, fn):
    return lambda m: fn(m["depth"], key)


def _set(path, value):
    def change(m):
        *parents, last = path.split(".")
        for p in parents:
            m = m[p]
        m[last] = value
    return change


def metadata_mutations() -> dict[str, tuple]:
    """name -> (members transform, expected skip reason)."""
    out = {}
    top = [k for k in META_SCHEMA if "." not in k]
    for key in top:
        out[f"drop {key}"] = (_drop(key), "bad_metadata")
        out[f"rename {key}"] = (_rename(key), "bad_metadata")
        out[f"retype {key}"] = (_retype(key), "bad_metadata")
    for key in ("kind", "units", "encoding", "scale"):
        out[f"drop depth.{key}"] = (_sub(key, lambda d, k: d.pop(k)), "bad_metadata")
        out[f"retype depth.{key}"] = (_sub(key, lambda d, k: d.__setitem__(k, wrong_type(d[k]))), "bad_metadata")
    out.update({
        "frame_indices shorter": (lambda m: m["frame_indices"].pop(), "bad_metadata"),
        "frame_indices longer": (lambda m: m["frame_indices"].append(9), "bad_metadata"),
        "poses shorter": (lambda m: m["poses"].pop(), "bad_metadata"),
        "poses longer": (lambda m: m["poses"].append(m["poses"][0]), "bad_metadata"),
        "pose 3x4": (lambda m: m["poses"][1].pop(), "bad_metadata"),
        "pose with NaN": (lambda m: m["poses"][2][0].__setitem__(0, float("nan")), "bad_metadata"),
        "K 2x3": (lambda m: m["K"].pop(), "bad_metadata"),
        "K with Inf": (lambda m: m["K"][0].__setitem__(0, float("inf")), "bad_metadata"),
        "K of strings": (_set("K", [["a"] * 3] * 3), "bad_metadata"),
        "num_frames 0": (_set("num_frames", 0), "bad_metadata"),
        "num_frames fewer than stored": (lambda m: (m.__setitem__("num_frames", T - 1), m["frame_indices"].pop(),
                                                    m["poses"].pop()), "bad_metadata"),
        "num_frames more than stored": (lambda m: (m.__setitem__("num_frames", T + 1), m["frame_indices"].append(3),
                                                   m["poses"].append(m["poses"][0])), "missing_member"),
        "num_frames a float": (_set("num_frames", 3.0), "bad_metadata"),
        "height a bool": (_set("height", True), "bad_metadata"),
        "height 200000": (_set("height", 200_000), "bad_metadata"),
        "width 200000": (_set("width", 200_000), "bad_metadata"),
        "both 200000": (lambda m: (m.__setitem__("height", 200_000), m.__setitem__("width", 200_000)),
                        "bad_metadata"),
        "height off by one": (_set("height", H + 1), "bad_metadata"),
        "width negative": (_set("width", -W), "bad_metadata"),
        "has_mask false but masks stored": (_set("has_mask", False), "bad_metadata"),
        "depth.kind none but depth stored": (_set("depth.kind", "none"), "bad_metadata"),
        "unknown depth.kind": (_set("depth.kind", "inverse_depth"), "bad_metadata"),
        "png16 scale 0": (_set("depth.scale", 0), "bad_metadata"),
        "png16 scale NaN": (_set("depth.scale", float("nan")), "bad_metadata"),
        "format_version 2": (_set("format_version", 2), "bad_metadata"),
        "frame_format jpg": (_set("frame_format", "jpg"), "missing_member"),
        "negative frame index": (lambda m: m["frame_indices"].__setitem__(0, -1), "bad_metadata"),
    })
    return {name: ((lambda members, fn=fn: with_meta(members, fn)), reason) for name, (fn, reason) in out.items()}


def _png_claiming(buf: bytes, h: int, w: int) -> bytes:
    """The same PNG with an IHDR that claims another size (its CRC no longer matches: never decoded)."""
    return buf[:16] + struct.pack(">II", w, h) + buf[24:]


def _npy_claiming(shape) -> bytes:
    header = {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)}
    text = repr(header).encode()
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + b"\0" * 64


def member_mutations() -> dict[str, tuple]:
    """Lies told by members rather than by the json; name -> (members transform on png16 or f32, reason)."""
    def frame0(m):
        return {**m, "frame000.png": _png_claiming(m["frame000.png"], 200_000, 200_000)}

    def frame2(m):
        return {**m, "frame002.png": _png_claiming(m["frame002.png"], 200_000, 200_000)}

    def depth1(m):
        return {**m, "depth001.png": _png_claiming(m["depth001.png"], 50_000, 50_000)}

    def mask1(m):
        return {**m, "mask001.png": _png_claiming(m["mask001.png"], 60_000, 60_000)}

    def npy_huge(m):
        return {**m, "depth.npy": _npy_claiming((T, 200_000, 200_000))}

    def npy_short(m):
        return {**m, "depth.npy": m["depth.npy"][:-20]}

    def extra_frame(m):
        return {**m, "frame003.png": m["frame000.png"]}

    return {
        "frame 0 header claims 200000x200000": (frame0, "png16", "bad_metadata"),
        "frame 2 header claims 200000x200000": (frame2, "png16", "bad_shape"),
        "depth 1 header claims 50000x50000": (depth1, "png16", "bad_shape"),
        "mask 1 header claims 60000x60000": (mask1, "png16", "bad_shape"),
        "depth.npy header claims (3, 200000, 200000)": (npy_huge, "f32", "bad_shape"),
        "depth.npy shorter than its header": (npy_short, "f32", "bad_depth"),
        "an extra frame member": (extra_frame, "png16", "bad_metadata"),
        "json is a list": (lambda m: {**m, "json": b"[1, 2]"}, "png16", "bad_metadata"),
        "json not UTF-8": (lambda m: {**m, "json": b"\xff\xfe{"}, "png16", "bad_metadata"),
        "json empty": (lambda m: {**m, "json": b""}, "png16", "bad_metadata"),
        "json absent": (lambda m: {k: v for k, v in m.items() if k != "json"}, "png16", "missing_member"),
    }


def all_cases() -> list[tuple[str, dict, str]]:
    cases = [(name, fn(good_members(100 + i)), reason)
             for i, (name, (fn, reason)) in enumerate(metadata_mutations().items())]
    for j, (name, (fn, enc, reason)) in enumerate(member_mutations().items()):
        cases.append((name, fn(good_members(500 + j, enc)), reason))
    return cases


def write_tar(path: Path, samples: list[tuple[str, dict]]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext in ["json"] + [e for e in members if e != "json"]:
                if ext not in members:
                    continue
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(members[ext])
                tar.addfile(info, io.BytesIO(members[ext]))


@pytest.fixture(scope="module")
def fuzz_shard(tmp_path_factory):
    """Good and mutated samples interleaved in one shard: (path, {good key: record}, {bad key: (case, reason)})."""
    folder = tmp_path_factory.mktemp("fuzz")
    samples, good, bad = [], {}, {}
    for n, (name, members, reason) in enumerate(all_cases()):
        key = f"bad{n:03d}"
        samples.append((key, members))
        bad[key] = (name, reason)
        if n % 4 == 0:
            key = f"good{n:03d}"
            samples.append((key, good_members(n)))
            good[key] = record(n)
    path = folder / "fuzz-000000.tar"
    write_tar(path, samples)
    return path, good, bad


def test_every_mutation_is_caught_with_its_reason():
    seen = set()
    for name, members, reason in all_cases():
        with pytest.raises(SampleError) as e:
            decode_members(members)
        assert e.value.reason == reason, (name, e.value)
        seen.add(reason)
    assert "bad_metadata" in seen and set(seen) <= set(SKIP_REASONS)


def test_fuzzed_stream_finishes_good_samples_intact_bad_ones_counted(fuzz_shard, caplog):
    path, good, bad = fuzz_shard
    dm = VideoDepthDataModule(val_shards=str(path), val=ValConfig(size=0, num_workers=0, batch_size=1), clip_len=T)
    dm.setup("validate")
    tracemalloc.start()
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        batches = list(dm.val_dataloader())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak traced allocation {peak / 2**20:.0f} MiB"  # a lie of 200000 px would be GiBs
    out = {b["key"][0]: b for b in batches}
    assert sorted(out) == sorted(good)
    for key, rec in good.items():  # pixel-exact decoding is checked below; here shapes and geometry
        assert tuple(out[key]["frames"].shape[-2:]) == (H, W)
        np.testing.assert_allclose(out[key]["K"][0].numpy(), rec.K)
        np.testing.assert_allclose(out[key]["poses"][0].numpy(), rec.poses)
    counts = dm.skip_counts()["val"]
    expected: dict[str, int] = {}
    for _, reason in bad.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert {k: v for k, v in counts.items() if v and k not in ("ok", "skipped")} == expected
    assert counts["ok"] == len(good) and counts["skipped"] == len(bad) and counts["other_error"] == 0
    assert expected["bad_metadata"] >= 60
    assert "bad_metadata" in caplog.text and str(path) in caplog.text and "bad000" in caplog.text


def test_fuzzed_samples_decode_exactly_when_good(fuzz_shard):
    path, good, bad = fuzz_shard
    counters = SkipCounters(0, "fuzz")
    recs = list(decode_stream(iter_tar_samples(str(path), counters), decode_members, counters))
    assert len(recs) == len(good)
    for rec, want in zip(recs, good.values()):
        np.testing.assert_array_equal(rec.frames, want.frames)
        np.testing.assert_array_equal(rec.mask, want.mask)
        np.testing.assert_allclose(rec.depth, want.depth, rtol=0, atol=0.5 / (65535 / want.depth.max()) + 1e-6)
        np.testing.assert_array_equal(rec.poses, want.poses)
    assert counters.as_dict()["skipped"] == len(bad)


def test_training_stream_skips_lying_metadata(fuzz_shard):
    path, good, _ = fuzz_shard
    dm = VideoDepthDataModule(train_shards=str(path), clip_len=2, crop_size=[14, 28], batch_size=2, num_workers=0,
                              epoch_length=4, shuffle_buffer=1)
    dm.setup("fit")
    steps = list(dm.train_dataloader())
    assert len(steps) == 4
    assert {k for s in steps for k in s["video"]["key"]} <= set(good)
    counts = dm.skip_counts()["train_video"]
    assert counts["bad_metadata"] >= 10 and counts["other_error"] == 0 and counts["ok"] >= 8


def _issue_cases(tmp_path: Path) -> Path:
    """The three reported cases: no `dataset`, `poses` shorter than num_frames, height/width 200000."""
    def no_dataset(m):
        m.pop("dataset")

    def short_poses(m):
        m["poses"] = m["poses"][:2]

    def huge(m):
        m["height"] = m["width"] = 200_000

    samples = [("good0", good_members(0))]
    samples += [(f"case{i}", with_meta(good_members(i + 1), fn)) for i, fn in enumerate((no_dataset, short_poses,
                                                                                          huge))]
    samples.append(("good1", good_members(9)))
    path = tmp_path / "cases-000000.tar"
    write_tar(path, samples)
    return path


def test_the_three_reported_cases_in_inspect(tmp_path, capsys):
    from vda_lightning.data.cli import main

    path = _issue_cases(tmp_path)
    tracemalloc.start()
    assert main(["inspect", str(path), "--json"]) == 0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["counts"]["ok"] == 2 and out["counts"]["bad_metadata"] == 3 and out["counts"]["skipped"] == 3
    assert peak < 64 * 2**20


def test_the_three_reported_cases_in_training(tmp_path, caplog):
    path = _issue_cases(tmp_path)
    dm = VideoDepthDataModule(train_shards=str(path), clip_len=T, crop_size=[14, 28], batch_size=1,
                              num_workers=0, epoch_length=6, shuffle_buffer=1)
    dm.setup("fit")
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        steps = list(dm.train_dataloader())
    assert {k for s in steps for k in s["video"]["key"]} == {"good0", "good1"}
    counts = dm.skip_counts()["train_video"]
    assert counts["bad_metadata"] >= 3 and counts["other_error"] == 0
    for text in ("key(s) dataset missing", "poses must be a list of num_frames 3 matrices, got 2",
                 "height 200000 is outside 1..8192"):
        assert text in caplog.text
    assert f"{path}:case0" in caplog.text  # the shard and the key


def test_the_size_limit_is_configurable(tmp_path):
    members = good_members(0)
    with pytest.raises(SampleError, match="width 28 is outside 1..20") as e:
        decode_members(members, max_side=20)
    assert e.value.reason == "bad_metadata"
    path = tmp_path / "s-000000.tar"
    write_tar(path, [("a", members)])
    dm = VideoDepthDataModule(val_shards=str(path), val=ValConfig(size=0, num_workers=0), clip_len=T,
                              max_frame_side=20)
    dm.setup("validate")
    assert list(dm.val_dataloader()) == [] and dm.skip_counts()["val"]["bad_metadata"] == 1


def test_the_writer_emits_the_schema_and_refuses_to_break_it():
    meta = json.loads(good_members(0)["json"])
    assert set(meta) == {k for k in META_SCHEMA if "." not in k}
    assert set(meta["depth"]) == {k.split(".")[1] for k in META_SCHEMA if k.startswith("depth.")}
    rec = record(0)
    rec.poses = rec.poses.copy()
    rec.poses[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"poses\[1\] holds a non-number or a NaN/Inf"):
        encode_record(rec)


def test_readme_states_the_same_schema():
    """data/README.md's schema table lists exactly META_SCHEMA's keys, and the skip-reason table SKIP_REASONS."""
    text = (ROOT / "data" / "README.md").read_text()
    section = text[text.index("#### Schema"):]
    section = section[:section.index("\n\n", section.index("|"))]
    keys = re.findall(r"^\| `([a-zA-Z_.]+)` \|", section, flags=re.M)
    assert keys == list(META_SCHEMA)
    reasons = re.findall(r"^\| `([a-z_]+)` \| ", text[text.index("The skip reasons"):], flags=re.M)
    assert reasons[:len(SKIP_REASONS)] == list(SKIP_REASONS)
