"""The threaded runner (inference/pipeline.py): the same maps as the one-thread runner and as the runner before the
threads (bit for bit on the CPU), bounded reads ahead, errors from every stage, Ctrl-C leaving nothing that looks
complete."""
from __future__ import annotations

import _thread
import threading
from itertools import islice

import numpy as np
import pytest
import torch

from vda_lightning.inference import OfflineRunner, StreamingRunner, pipeline
from vda_lightning.inference.offline import _concat, _repeat_last, _select
from vda_lightning.inference.pipeline import BackgroundIterator, max_frames_in_flight, overlap_pays, run_pipelined
from vda_lightning.inference.preprocess import Preprocessor
from vda_lightning.inference.runtime import to_frame_size
from vda_lightning.inference.windows import INFER_LEN, KEYFRAMES, STRIDE, Stitcher
from vda_lightning.models import build_video_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_video_model("vitt").eval()
    with torch.no_grad():  # active temporal layers
        for mm in m.head.motion_modules:
            torch.nn.init.normal_(mm.temporal_transformer.proj_out.weight, std=0.05)
    return m


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(3).integers(0, 256, (57, 20, 30, 3), dtype=np.uint8)  # 3 windows, a short last


@torch.inference_mode()
def runner_before_threads(model, frames, input_size):
    """The OfflineRunner loop as it was before it was split into stages (commit 3c5b931), restated: the reference
    for 'identical to today's runner'."""
    it, stitcher, carried, last, total, k, out = iter(frames), Stitcher(), None, None, 0, 0, []
    prep = None
    while True:
        need = INFER_LEN if k == 0 else STRIDE
        new = list(islice(it, need))
        if k == 0:
            prep = Preprocessor(*new[0].shape[:2], input_size=input_size)
        total += len(new)
        exhausted = len(new) < need
        is_last = exhausted and total <= STRIDE * (k + 1)
        parts = [] if carried is None else [carried]
        if new:
            feats = list(model.forward_features(prep(np.stack(new))))
            last = _select(feats, slice(-1, None))
            parts.append(feats)
        if need - len(new):
            parts.append(_repeat_last(last, need - len(new)))
        window = _concat(*parts) if len(parts) > 1 else parts[0]
        depth, _ = model.forward_depth(window, *prep.shape, 1, INFER_LEN)
        raw = to_frame_size(depth[0], prep.frame_size).cpu().numpy()
        carried = _select(window, list(KEYFRAMES))
        out += stitcher.add_window(raw, num_frames=total if exhausted else None, last=is_last)
        if is_last:
            return np.stack(out)
        k += 1


def threaded(runner, frames, **kw):
    out = []
    assert run_pipelined(runner, iter(frames), out.append, **kw) == len(frames)
    return np.stack(out)


@pytest.mark.parametrize("length", [32, 57])
def test_threaded_runner_is_bit_identical_to_the_serial_and_to_the_runner_before_threads(model, frames, length):
    clip = frames[:length]
    serial = np.stack(list(OfflineRunner(model, 28).run(iter(clip))))
    assert np.array_equal(threaded(OfflineRunner(model, 28), clip), serial)
    before = runner_before_threads(model, clip, 28)
    if length == INFER_LEN:  # no padding slot: the same convolutions on the same batches
        assert np.array_equal(serial, before)
    else:  # since issue 28 the padding slots skip the head's tail: its convolutions see fewer frames per batch
        assert np.abs(serial - before).max() <= 1e-5 * np.abs(before).max()


def test_threaded_streaming_is_bit_identical(model, frames):
    clip = frames[:34]  # past the 32-entry context
    serial = np.stack(list(StreamingRunner(model, 28).run(iter(clip))))
    runner = StreamingRunner(model, 28)
    assert np.array_equal(threaded(runner, clip[:3]), serial[:3])
    assert np.array_equal(threaded(runner, clip), serial)  # a second video through the same runner starts afresh
    stepped = StreamingRunner(model, 28)
    assert np.array_equal(np.stack([stepped.step(f) for f in clip]), serial)


def test_reads_ahead_are_bounded_and_order_is_kept(model):
    """Frames pulled from the source but not yet written never exceed the stated bound (host memory is bounded
    whatever the length), and maps arrive in order: frame i's map is the serial runner's map i."""
    clip = np.random.default_rng(5).integers(0, 256, (150, 14, 14, 3), dtype=np.uint8)
    pulled, worst, out = 0, 0, []

    def source():
        nonlocal pulled
        for f in clip:
            pulled += 1
            yield f

    def sink(depth):
        nonlocal worst
        out.append(depth)
        worst = max(worst, pulled - len(out))

    runner = OfflineRunner(model, 28)
    run_pipelined(runner, source(), sink, prefetch=1, queue_size=1)
    bound = max_frames_in_flight(runner, prefetch=1, queue_size=1)
    assert 0 < worst <= bound, (worst, bound)
    assert np.array_equal(np.stack(out), np.stack(list(OfflineRunner(model, 28).run(iter(clip)))))


def no_stage_threads():
    return not [t for t in threading.enumerate() if t.name in ("vda-reader", "vda-finisher") and t.is_alive()]


def test_errors_of_each_stage_reach_the_caller_and_stop_the_threads(model, frames):
    def broken_source():
        yield from frames[:40]
        raise ValueError("frame 40: unreadable")

    with pytest.raises(ValueError, match="frame 40: unreadable"):
        run_pipelined(OfflineRunner(model, 28), broken_source(), lambda d: None)
    assert no_stage_threads()

    def full_disk(depth, seen=[]):  # noqa: B006 - a counter local to this test
        seen.append(depth)
        if len(seen) == 5:
            raise OSError(28, "No space left on device", "spool")

    with pytest.raises(OSError, match="No space left"):
        run_pipelined(OfflineRunner(model, 28), iter(frames), full_disk)
    assert no_stage_threads()
    with pytest.raises(ValueError, match="no frames"):
        run_pipelined(OfflineRunner(model, 28), iter([]), lambda d: None)


def test_background_iterator_stops_its_source_when_the_consumer_leaves():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = BackgroundIterator(endless(), maxsize=2).start()
    assert list(islice(iter(it), 5)) == [0, 1, 2, 3, 4]
    it.close()
    assert closed.wait(5) and no_stage_threads()


def test_ctrl_c_stops_the_threads_and_keeps_what_is_complete(model, frames, tmp_path, monkeypatch, capsys):
    """vda infer on two inputs, Ctrl-C while the second is half done: exit 130, the first input's outputs are
    complete, the second left nothing (no npz, no png16 folder, no partial spool), no thread left running."""
    import cv2

    from vda_lightning import save_model
    from vda_lightning.inference import cli, frame_sources

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i, f in enumerate(frames):
            cv2.imwrite(str(tmp_path / name / f"{i:03d}.png"), f[..., ::-1])
    ckpt = save_model(model, tmp_path / "m.safetensors")
    real_open = frame_sources.open_source

    def open_source(path, **kw):
        source = real_open(path, **kw)
        if path.name != "b":
            return source

        class Interrupting:  # Ctrl-C arrives (in the main thread) while the reader is at frame 30 of input b
            def __iter__(self):
                for i, f in enumerate(source):
                    if i == 30:
                        _thread.interrupt_main()
                    yield f

            def __getattr__(self, name):
                return getattr(source, name)

        return Interrupting()

    monkeypatch.setattr(frame_sources, "open_source", open_source)
    monkeypatch.setattr(pipeline, "overlap_pays", lambda device: True)  # the threads even on a CPU without a spare one
    out = tmp_path / "out"
    args = [str(tmp_path / "a"), str(tmp_path / "b"), "--checkpoint", str(ckpt), "--input-size", "28",
            "--save", "npz,png16", "--output-dir", str(out)]
    try:
        code = cli.main(args)
    except KeyboardInterrupt:  # the command-wide Ctrl-C handling (exit 130, one line) is cli/errors.py's
        code = 130
    assert code == 130
    assert np.load(out / "a_depths.npz")["depths"].shape == (57, 20, 30)
    assert len(list((out / "a_png16").glob("*.png"))) == 57
    assert sorted(p.name for p in out.iterdir()) == ["a_depths.npz", "a_png16"]  # nothing of b, nothing hidden
    assert no_stage_threads()


def test_vda_infer_threads_where_a_core_is_spare(monkeypatch):
    """On an accelerator always; on the CPU only beside torch's intra-op threads (else the I/O threads only compete
    with the compute; docs/gpu.md has the figures)."""
    assert overlap_pays(torch.device("cuda")) and overlap_pays("mps")
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not overlap_pays(torch.device("cpu"))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert overlap_pays(torch.device("cpu"))
