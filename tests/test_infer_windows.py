"""Pure parts of the long-video inference: window plan, least squares, stitching, pre-processing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vda_lightning.inference.baseline import _stitch
from vda_lightning.inference.preprocess import Preprocessor
from vda_lightning.inference.windows import Stitcher, least_squares_scale_shift, num_windows, window_frames
from vda_lightning.models.input_contract import DEFAULT_CONTRACT, aspect_input_size


def test_window_plan_matches_the_slot_copy_rule():
    assert [num_windows(n) for n in (1, 22, 23, 44, 45, 70)] == [1, 1, 2, 2, 3, 4]
    assert window_frames(0, 70) == list(range(32))
    # window 2 starts at frame 44: slot 0 = frame 0, slot 1 = frame 34 (= window 1's slot 12), then 46..75
    assert window_frames(2) == [0, 34] + list(range(46, 76))
    # ...and unrolling the published copy X_k[0:10] = X_{k-1}[KEYFRAMES] gives the same indices
    prev = window_frames(1)
    assert window_frames(2)[:10] == [prev[i] for i in (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)]
    assert window_frames(2, 54)[-1] == 53 and window_frames(2, 54)[9] == 53  # padding repeats the last frame


def test_least_squares_hand_case():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    s, t = least_squares_scale_shift(pred, 2.5 * pred - 1.0)
    assert s == pytest.approx(2.5, abs=1e-5) and t == pytest.approx(-1.0, abs=1e-5)
    assert least_squares_scale_shift(np.ones((3, 3)), np.zeros((3, 3))) == (1.0, 0.0)  # det == 0


@pytest.mark.parametrize("length", [5, 22, 23, 32, 33, 44, 54, 70, 90])
@pytest.mark.parametrize("metric", [False, True])
def test_streaming_stitcher_equals_the_list_based_published_stitching(length, metric):
    rng = np.random.default_rng(length)
    n_win = num_windows(length)
    raw = rng.normal(1.0, 0.5, size=(32 * n_win, 6, 7)).astype(np.float32)  # negatives exercise the clip
    raw[:32] = np.abs(raw[:32])  # window 0 is ReLU output
    expected = _stitch(list(raw), length, metric)
    stitcher = Stitcher(metric=metric)
    got = []
    for k in range(n_win):
        ready = stitcher.add_window(raw[32 * k : 32 * (k + 1)], num_frames=length, last=k == n_win - 1)
        got += ready
        if k < n_win - 1:  # everything but the 8 frames awaiting the cross-fade is out already
            assert len(got) == min(22 * k + 24, length)
    np.testing.assert_array_equal(np.stack(got), expected)
    assert (np.stack(got) >= 0).all()


def test_hand_computed_two_window_stitch():
    # window 1 predicts exactly half of window 0 for the key frames -> s = 2, t = 0; cross-fade of equal maps
    w0 = np.tile(np.arange(1, 33, dtype=np.float32)[:, None, None], (1, 2, 2))
    w1 = np.empty_like(w0)
    w1[0], w1[1] = w0[0] / 2, w0[12] / 2
    w1[2:] = np.arange(25, 55, dtype=np.float32)[:, None, None] / 2  # frames 24..53 (value f+1) at half
    st = Stitcher()
    out = np.stack(st.add_window(w0) + st.add_window(w1, num_frames=54, last=True))
    np.testing.assert_allclose(out[:, 0, 0], np.arange(1, 55), rtol=1e-5)


def test_aspect_rule_and_lower_bound_resize():
    video_shape = lambda h, w: DEFAULT_CONTRACT.network_size(h, w, 518, video=True)
    assert aspect_input_size(374, 1242) == 280 and aspect_input_size(436, 1024) == 392
    assert video_shape(720, 1280) == (518, 924)
    assert video_shape(480, 640) == (518, 686)
    assert video_shape(374, 1242) == (280, 924)
    assert video_shape(518, 518) == (518, 518)


def test_batched_device_preprocessing_matches_cv2_cubic():
    frames = np.random.default_rng(0).integers(0, 256, (3, 45, 80, 3), dtype=np.uint8)
    prep = Preprocessor(45, 80, input_size=70)
    h, w = prep.shape
    ref = []
    for f in frames:
        im = cv2.resize(f.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_CUBIC)
        ref.append(((im - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).astype(np.float32).transpose(2, 0, 1))
    out = prep(frames)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 3, h, w)
    np.testing.assert_allclose(out.numpy(), np.stack(ref), atol=2e-4)  # 2e-4 / 4.4 ≈ 5e-5 in [0, 1] units
    with pytest.raises(ValueError, match="frame size"):
        prep(frames[:, :40])
