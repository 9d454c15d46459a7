"""The Python API on the top-level package: load_model, read_video, infer_video, infer_video_iter."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import vda_lightning
from vda_lightning import save_model
from vda_lightning.inference import OfflineRunner, StreamingRunner
from vda_lightning.inference.streaming import READ_AHEAD
from vda_lightning.models import build_video_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.fakes.videos import write_clip

    d = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    model = build_video_model("vitt").eval()
    frames = np.random.default_rng(0).integers(0, 256, (25, 28, 42, 3), dtype=np.uint8)
    return {"model": model, "frames": frames, "ckpt": save_model(model, d / "tiny.safetensors"),
            "clip": write_clip(d / "clip.mp4", frames, fps=10)}


def test_infer_video_in_memory_and_as_an_iterator(tiny):
    expected = np.stack(list(OfflineRunner(tiny["model"], 28).run(iter(tiny["frames"]))))
    depths = vda_lightning.infer_video(tiny["model"], tiny["frames"], input_size=28)
    assert depths.dtype == np.float32 and depths.shape == (25, 28, 42)
    np.testing.assert_array_equal(depths, expected)
    maps = vda_lightning.infer_video_iter(tiny["model"], (f for f in tiny["frames"]), input_size=28)
    assert isinstance(maps, types.GeneratorType)  # lazy: one map at a time
    np.testing.assert_array_equal(np.stack(list(maps)), expected)
    few = tiny["frames"][:4]
    streamed = vda_lightning.infer_video(tiny["model"], few, input_size=28, mode="streaming")
    ahead = StreamingRunner(tiny["model"], 28, read_ahead=READ_AHEAD)  # make_runner's on the CPU
    np.testing.assert_array_equal(streamed, np.stack(list(ahead.run(few))))


def test_paths_for_the_model_and_the_video(tiny):
    """A checkpoint path and a video path work; the video is read with read_video's rules."""
    frames, fps = vda_lightning.read_video(tiny["clip"], target_fps=5)
    assert fps == 5.0 and len(frames) == 13
    expected = vda_lightning.infer_video(tiny["model"], frames, input_size=28)
    got = vda_lightning.infer_video(str(tiny["ckpt"]), tiny["clip"], input_size=28, target_fps=5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_one_line_errors(tiny):
    with pytest.raises(ValueError, match="uint8 RGB"):
        vda_lightning.infer_video(tiny["model"], tiny["frames"].astype(np.float32))
    with pytest.raises(ValueError, match="mode must be one of"):
        vda_lightning.infer_video(tiny["model"], tiny["frames"], mode="online")
    with pytest.raises(ValueError, match="no such file"):
        vda_lightning.infer_video(tiny["model"], "/nonexistent/clip.mp4")


def test_cuda_is_picked_when_available(monkeypatch, tiny):
    """device="auto" and precision=None give CUDA + fp16 (the published default) when a GPU is visible."""
    from vda_lightning import devices
    from vda_lightning.inference import offline

    seen = {}

    class Recorder:
        def __init__(self, model, input_size, device, precision):
            seen.update(device=device, precision=precision)

        def run(self, frames):
            return iter(())

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(offline, "OfflineRunner", Recorder)
    vda_lightning.infer_video_iter(tiny["model"], tiny["frames"])
    assert seen == {"device": torch.device("cuda"), "precision": "fp16"}
    assert devices.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    vda_lightning.infer_video_iter(tiny["model"], tiny["frames"])
    assert seen == {"device": torch.device("cpu"), "precision": "fp32"}
    for fn in (vda_lightning.infer_video, vda_lightning.infer_video_iter, vda_lightning.inference.infer_video_depth):
        params = inspect.signature(fn).parameters
        assert params["device"].default == "auto" and params["precision"].default is None


def test_readme_example_runs(tiny, tmp_path, monkeypatch):
    """The README's five-line example, as written, on a tiny checkpoint and clip in its place."""
    text = (ROOT / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "infer_video(" in b)
    assert len(code.strip().splitlines()) <= 6
    monkeypatch.chdir(tmp_path)
    ckpt = re.search(r'load_model\("([^"]+)"\)', code).group(1)
    clip = re.search(r'read_video\("([^"]+)"', code).group(1)
    (tmp_path / ckpt).write_bytes(Path(tiny["ckpt"]).read_bytes())
    (tmp_path / clip).write_bytes(Path(tiny["clip"]).read_bytes())
    scope = {}
    exec(compile(code.replace("518", "28"), "README.md", "exec"), scope)
    assert scope["depths"].shape == (25, 28, 42)


def test_importing_the_package_stays_light():
    probe = "import sys, vda_lightning; vda_lightning.read_video; print(sorted(m for m in sys.modules if m in " \
            "('torch', 'cv2', 'lightning')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
    assert {"load_model", "read_video", "infer_video", "infer_video_iter"} <= set(vda_lightning.__all__)
