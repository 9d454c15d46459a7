"""Golden parity of the long-video runner, the published-loop baseline and the streaming mode."""
from __future__ import annotations

import numpy as np
import pytest

from vda_lightning.inference import OfflineRunner, StreamingRunner, infer_video_depth, published_loop

TOL = 1e-4  # max |ours - ref| <= 1e-4 * max |ref|, per frame


def _check(out, ref):
    assert out.shape == ref.shape and out.dtype == np.float32
    err = np.abs(out - ref).reshape(len(ref), -1).max(axis=1) / np.abs(ref).max()
    assert err.max() <= TOL, f"frame {err.argmax()}: {err.max():.2e}"


@pytest.fixture(scope="module")
def long_case(golden_dir):
    return np.load(golden_dir / "long_video_case.npz")


def test_offline_runner_matches_published_long_video(golden_video_model, long_case):
    runner = OfflineRunner(golden_video_model, input_size=int(long_case["input_size"]))
    out = np.stack(list(runner.run(iter(long_case["frames"]))))
    _check(out, long_case["depths"])
    # 70 frames -> 4 windows (128 slots) but every frame goes through the encoder exactly once:
    # carried slots reuse features, padding copies reuse the last frame's
    assert runner.windows_run == 4 and runner.frames_encoded == 70
    assert np.array_equal(out, infer_video_depth(golden_video_model, long_case["frames"], input_size=70))


def test_published_loop_baseline_matches_too(golden_video_model, long_case):
    _check(published_loop(golden_video_model, long_case["frames"], input_size=70), long_case["depths"])


def test_streaming_mode_matches_published(golden_video_model, long_case, golden_dir):
    ref = np.load(golden_dir / "streaming_case.npz")
    runner = StreamingRunner(golden_video_model, input_size=int(ref["input_size"]))
    out = np.stack(list(runner.run(iter(long_case["frames"][: int(ref["n_frames"])]))))
    _check(out, ref["depths"])
    assert runner.cached_frames == 42  # bounded
