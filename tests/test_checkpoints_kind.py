"""Relative or metric: what a file says (argument > metadata > published name > nothing), the output probe's
decision rule on models whose answer is known, and Depth Anything V2 metric files mapped onto the ReLU head."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vda_lightning import load_model, save_model
from vda_lightning.checkpoints import probe_kind, resolve_kind
from vda_lightning.checkpoints.kind import PROBE_THRESHOLD, decide, probe_scenes, rank_correlation
from vda_lightning.models import build_image_model, build_video_model
from vda_lightning.models.depth_anything import SIGMOID_ANCHORS


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    return build_video_model("vitt").state_dict()


@pytest.mark.parametrize("name, metric, source", [
    ("metric_video_depth_anything_vitt.pth", True, "name"),
    ("video_depth_anything_vitt.pth", False, "name"),
    ("weights.pth", False, "none"),
])
def test_kind_from_a_plain_state_dict(tmp_path, tiny_state, name, metric, source):
    torch.save(tiny_state, tmp_path / name)
    model = load_model(tmp_path / name)
    assert (model.config.metric, model.kind_source) == (metric, source)
    forced = load_model(tmp_path / name, metric=not metric)
    assert (forced.config.metric, forced.kind_source) == (not metric, "argument")


def test_our_files_carry_their_kind(tmp_path, tiny_state):
    model = build_video_model("vitt", metric=True)
    model.load_state_dict(tiny_state)
    for path in (tmp_path / "neutral.safetensors", tmp_path / "neutral.pth"):
        loaded = load_model(save_model(model, path))
        assert loaded.config.metric and loaded.kind_source == "metadata"
        _, line = resolve_kind(loaded)
        assert line == "metric depth model (from the file's metadata)"


class Oracle(torch.nn.Module):
    """A stand-in network that 'knows' the probe scenes: outputs their depth (metric) or 1/depth (relative)."""

    def __init__(self, metric: bool, noise: float = 0.0):
        super().__init__()
        self.scenes, self.metric, self.noise = probe_scenes(), metric, noise
        self.config = build_video_model("vitt").config

    def forward(self, x):
        means = torch.tensor([s["frames"].mean() for s in self.scenes])
        contract = self.config.input_contract()
        rgb = x[0] * torch.tensor(contract.std).view(1, 3, 1, 1) + torch.tensor(contract.mean).view(1, 3, 1, 1)
        scene = self.scenes[int((means - rgb.mean() * 255).abs().argmin())]
        depth = torch.from_numpy(scene["depth"]).clamp_min(0.1)
        out = depth if self.metric else 1.0 / depth
        gen = torch.Generator().manual_seed(0)
        return (out * torch.exp(self.noise * torch.randn(out.shape, generator=gen))).unsqueeze(0)


def test_probe_decides_only_on_strong_agreement():
    assert probe_kind(Oracle(True)).metric is True and probe_kind(Oracle(False)).metric is False
    assert min(probe_kind(Oracle(True)).correlations) > 0.99
    noisy = probe_kind(Oracle(True, noise=3.0))  # log-normal noise drowns the ordering
    assert noisy.metric is None and abs(float(np.median(noisy.correlations))) < PROBE_THRESHOLD
    # the median scene decides, and no scene may read the opposite way past the bar
    assert decide([0.9, 0.8, 0.7]) is True and decide([0.9, 0.5, 0.4]) is None and decide([0.9, 0.8, -0.7]) is None
    assert decide([-0.8, -0.9, -0.8]) is False and decide([-0.9, -0.8, 0.7]) is None
    x = np.arange(10.0)
    assert rank_correlation(x, x ** 3) == pytest.approx(1.0) and rank_correlation(x, -x) == pytest.approx(-1.0)


def test_resolve_kind_probes_only_silent_files(tmp_path):
    oracle = Oracle(True)
    oracle.kind_source = "none"
    model, line = resolve_kind(oracle)
    assert model.config.metric and model.kind_source == "probe" and line.startswith("metric depth model (from a probe")
    oracle = Oracle(True)
    oracle.kind_source = "name"  # the file says relative: no probe
    model, line = resolve_kind(oracle)
    assert not model.config.metric and "file name" in line


def test_dav2_metric_file_is_folded_onto_the_relu_head(tmp_path):
    torch.manual_seed(1)
    image = build_image_model("vitt").eval()
    path = tmp_path / "depth_anything_v2_metric_vkitti_vitt.pth"  # the published naming: vkitti -> 80 m
    torch.save(image.state_dict(), path)
    video = load_model(path)
    assert video.config.metric and video.kind_source == "name"
    z = {}
    image.depth_head.scratch.output_conv2[2].register_forward_hook(lambda m, i, o: z.setdefault("z", o))
    x = torch.randn(3, 3, 28, 42)
    with torch.no_grad():
        image(x)
        out = video(x.unsqueeze(0))[0]  # fresh temporal modules: frame by frame the image network
    lo, hi = (80.0 * f for f in SIGMOID_ANCHORS)
    za, zb = (float(torch.logit(torch.tensor(f, dtype=torch.float64))) for f in SIGMOID_ANCHORS)
    a = (hi - lo) / (zb - za)
    expected = torch.relu(a * z["z"][:, 0].double() + (lo - a * za))
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    # the affine map agrees with 80 * sigmoid(z) at the anchors and keeps the order (a > 0)
    for f, zz in zip(SIGMOID_ANCHORS, (za, zb)):
        assert a * zz + (lo - a * za) == pytest.approx(80.0 * f)
    assert a > 0
    renamed = tmp_path / "my_metric_dav2.pth"
    torch.save(image.state_dict(), renamed)
    assert not load_model(renamed).config.metric  # a renamed file says nothing ...
    folded = load_model(renamed, dav2_max_depth=80.0)  # ... unless told its max_depth
    assert folded.config.metric and folded.kind_source == "argument"
    with torch.no_grad():
        torch.testing.assert_close(folded(x.unsqueeze(0)), out.unsqueeze(0))
