"""The GPU-era loader's two halves on the CPU: JPEG frames left as bytes by the workers and decoded in one batch
(data/device_decode.py, the code the CUDA path runs) give the OpenCV-decoded frames exactly, and the `f16lz4`
depth member is read through trust/compressed.py: exact on good bytes, one `bad_depth` line on any other."""
from __future__ import annotations

import lz4.frame
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vda_lightning.data.device_decode import decode_deferred
from vda_lightning.data.format import ClipRecord, SampleError, decode_members, encode_record

from tests.helpers.jpeg_clips import SIZES, stored_batches


@pytest.fixture(scope="module")
def batches():
    return stored_batches()


def test_deferred_jpeg_batch_decodes_to_the_workers_frames(batches):
    deferred, decoded = batches
    assert "frames" not in deferred and len(deferred["jpeg"]) == 2 and deferred["stored_hw"].tolist() == list(
        map(list, SIZES))
    out = decode_deferred(deferred, "cpu")
    assert out["frames"].dtype == torch.uint8 and out["frames"].shape == decoded["frames"].shape == (2, 3, 3, 56, 84)
    # libjpeg-turbo on both sides (torchvision on the CPU, OpenCV in the worker): the same grey levels, padding too
    assert torch.equal(out["frames"], decoded["frames"])
    for k in ("disparity", "depth", "mask", "augment_params", "K", "poses"):
        assert torch.equal(out[k], decoded[k]), k


def _clip(T=2, H=5, W=7):
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 60, (T, H, W)).astype(np.float32)
    rec = ClipRecord(rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8), "ds", "seq", list(range(T)), depth=depth)
    return rec, encode_record(rec, depth_encoding="f16lz4")


def test_f16lz4_keeps_float16_depth_and_decodes_only_the_window():
    rec, members = _clip(T=3)
    out = decode_members(members, slice(1, 3))
    assert out.depth.dtype == np.float32
    np.testing.assert_array_equal(out.depth, rec.depth[1:3].astype(np.float16).astype(np.float32))


GOOD = _clip()[1]


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(member=st.sampled_from(["depth000.f16.lz4", "depth001.f16.lz4"]),
       edit=st.one_of(st.tuples(st.just("cut"), st.integers(0, 200)),
                      st.tuples(st.just("flip"), st.integers(0, 200), st.integers(1, 255)),
                      st.tuples(st.just("append"), st.binary(min_size=1, max_size=16)),
                      st.tuples(st.just("replace"), st.binary(max_size=64)),
                      st.tuples(st.just("bomb"), st.integers(71, 1 << 22))))
def test_f16lz4_member_bytes_are_exact_or_one_bad_depth_line(member, edit):
    buf = bytearray(GOOD[member])
    if edit[0] == "cut":
        buf = buf[: edit[1] % len(buf)]
    elif edit[0] == "flip":
        buf[edit[1] % len(buf)] ^= edit[2]
    elif edit[0] == "append":
        buf += edit[1]
    elif edit[0] == "replace":
        buf = bytearray(edit[1])
    else:  # a frame that claims (and would inflate to) far more than one 5x7 float16 map
        buf = bytearray(lz4.frame.compress(bytes(edit[1])))
    members = {**GOOD, member: bytes(buf)}
    try:
        out = decode_members(members)
    except SampleError as e:
        assert e.reason in ("bad_depth", "nonfinite_depth") and "\n" not in e.detail
        assert e.reason == "nonfinite_depth" or "depth 0" in e.detail or "depth 1" in e.detail
        return
    assert out.depth.shape == (2, 5, 7)  # a flipped bit lz4 cannot see is a different, well-formed map
