"""The runner interface (`inference/runners.py`): both runners follow `DepthRunner`, the PyTorch model and the
onnxruntime backend follow `RunnerModel`, and `make_runner` is where `vda infer`, `infer_video` and
`infer_video_depth` get their runner."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import vda_lightning
from vda_lightning.deploy.ort_backend import OnnxRuntimeModel
from vda_lightning.inference import OfflineRunner, StreamingRunner, runners
from vda_lightning.inference.cli import main
from vda_lightning.inference.runners import DepthRunner, RunnerModel, make_runner

STEPS = ("to", "eval", "forward_features", "forward_depth", "forward_step")


def test_both_runners_and_both_backends_have_the_named_shape(tiny_model):
    offline, streaming = make_runner(tiny_model, "offline", 28, "cpu"), make_runner(tiny_model, "streaming", 28, "cpu")
    assert type(offline) is OfflineRunner and type(streaming) is StreamingRunner
    assert isinstance(offline, DepthRunner) and isinstance(streaming, DepthRunner)
    assert isinstance(tiny_model, RunnerModel)
    # the onnxruntime backend declares the interface and implements every step itself (no inherited stub)
    assert RunnerModel in OnnxRuntimeModel.__mro__ and all(step in vars(OnnxRuntimeModel) for step in STEPS)
    with pytest.raises(ValueError, match="mode must be one of"):
        make_runner(tiny_model, "online")


def test_make_runner_picks_device_and_precision(tiny_model, monkeypatch):
    """A PyTorch model: the device asked for ("auto": CUDA when visible) at fp16 on CUDA / fp32 elsewhere unless
    told; anything else (the onnxruntime graphs) is fed host tensors in fp32, as `vda infer --backend onnxruntime`
    always did."""
    cpu = make_runner(tiny_model, "offline", 28, "auto")
    assert (cpu.device.type, cpu.precision) == ("cpu", "fp32")
    assert make_runner(tiny_model, "streaming", 28, "cpu", "bf16").precision == "bf16"
    graphs = SimpleNamespace(config=tiny_model.config, to=lambda device: graphs, eval=lambda: graphs)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on_host = make_runner(graphs, "offline", 28, "auto", "fp16")
    assert (on_host.device.type, on_host.precision) == ("cpu", "fp32")


def test_the_command_and_the_api_choose_their_runner_in_make_runner(tiny_model, tiny_checkpoint, tmp_path,
                                                                    monkeypatch):
    """Whatever the entry point, the runner comes from `make_runner`: replacing it replaces the runner of
    `vda infer`, `infer_video` and `infer_video_depth` alike."""
    seen = []

    class Chosen(Exception):
        pass

    def recording(model, mode="offline", input_size=518, device="auto", precision=None, **levers):
        seen.append((mode, input_size, str(device), precision))
        raise Chosen

    monkeypatch.setattr(runners, "make_runner", recording)
    frames = np.zeros((2, 28, 42, 3), np.uint8)
    folder = tmp_path / "clip"
    folder.mkdir()
    import cv2

    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    with pytest.raises(Chosen):
        main([str(folder), "--checkpoint", str(tiny_checkpoint), "--input-size", "28", "--mode", "streaming",
              "--device", "cpu", "--output-dir", str(tmp_path / "out")])
    with pytest.raises(Chosen):
        vda_lightning.infer_video(tiny_model, frames, input_size=28, device="cpu", precision="fp32")
    with pytest.raises(Chosen):
        vda_lightning.inference.infer_video_depth(tiny_model, frames, input_size=42)
    assert seen == [("streaming", 28, "cpu", None), ("offline", 28, "cpu", "fp32"), ("offline", 42, "auto", None)]
