"""Relative or metric: what a checkpoint says about itself, what a user says, and what its weights show.

A relative and a metric Video Depth Anything network have the same architecture, the same keys and the same
shapes (published `video_depth_anything/video_depth.py`: `metric=True` only switches the inter-window alignment
off), so nothing in the tensors themselves tells them apart. What does differ is what a *trained* network computes:
a relative model outputs disparity, which falls with distance; a metric one outputs depth, which rises. The probe
renders a few procedural scenes with exact depth (`data.synthetic_scenes`), runs the model on them, and measures
the rank correlation of the output with the true depth over each scene's valid pixels. Strong agreement of every
scene (|rho| >= 0.75, one sign) decides; anything else is inconclusive, and the model is treated as relative (the
published default) with a note that `--metric` says otherwise.

How far this can be trusted (measured on the scenes below): the tiny `vitt` model fine-tuned in metric mode for 30
steps (tests/test_train_metric.py) gives rho +0.83 / +0.88 / +0.90 -> metric; the same model after 30 relative
steps +0.39 / -0.86 / -0.58 -> inconclusive; random weights are NOT neutral — the golden random `vits` gives
-0.69 / -0.60 / -0.69 and a random `vitt` -0.61 / -0.33 / -0.46 (the scenes' fog ties brightness to depth), which
is why the bar is 0.75 and not lower. So the probe can only recognise well-trained networks on scenes like these;
it cannot be proven on the published weights here (they are not downloadable). The `--metric / --relative` switch,
or the kind recorded in our files' metadata, is the documented way; the probe runs only when both are silent, and
only its "metric" verdict changes anything (relative is the default anyway).

Order: the command's --metric/--relative > the file's metadata (our config / safetensors metadata / sidecar) >
a published file name (`metric_video_depth_anything_*`, `video_depth_anything_*`, `depth_anything_v2_*`) > probe.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

PROBE_SHAPE = (98, 126)  # multiples of 14: small enough for a vitl forward on the CPU in seconds
PROBE_FRAMES = 4
PROBE_SEEDS = (1201, 1202, 1203)
PROBE_THRESHOLD = 0.75
SOURCES = {"argument": "the command line", "metadata": "the file's metadata", "name": "the file name",
           "probe": "a probe of its outputs", "none": "nothing (relative assumed)"}


@dataclass
class ProbeResult:
    metric: bool | None           # None: inconclusive
    correlations: list[float]     # per probe scene: Spearman rank correlation of output with true depth

    def describe(self) -> str:
        rhos = ", ".join(f"{r:+.2f}" for r in self.correlations)
        verdict = {True: "rises with depth: metric", False: "falls with depth: relative",
                   None: "inconclusive"}[self.metric]
        return f"output vs true depth, rank correlation per probe scene {rhos} ({verdict})"


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (ranks by argsort; ties broken by order, which is harmless for continuous outputs)."""
    if x.size < 3:
        return 0.0
    rx = np.empty(x.size)
    ry = np.empty(y.size)
    rx[np.argsort(x, kind="stable")] = np.arange(x.size)
    ry[np.argsort(y, kind="stable")] = np.arange(y.size)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else 0.0


def decide(correlations: list[float], threshold: float = PROBE_THRESHOLD) -> bool | None:
    """metric if every scene's rho >= threshold, relative if every one <= -threshold, else None."""
    if correlations and all(r >= threshold for r in correlations):
        return True
    if correlations and all(r <= -threshold for r in correlations):
        return False
    return None


def probe_scenes(shape=PROBE_SHAPE, frames: int = PROBE_FRAMES, seeds=PROBE_SEEDS) -> list[dict]:
    from ..data.synthetic_scenes import render_clip

    return [render_clip([seed], frames, *shape) for seed in seeds]


@torch.inference_mode()
def probe_kind(model, device="cpu", scenes: list[dict] | None = None,
               threshold: float = PROBE_THRESHOLD) -> ProbeResult:
    """Run `model` ((B,T,3,H,W) normalised by its input contract -> (B,T,H,W)) on the probe scenes and decide."""
    contract = model.config.input_contract()
    correlations = []
    for scene in scenes or probe_scenes():
        frames = torch.from_numpy(scene["frames"]).permute(0, 3, 1, 2).float() / 255.0
        x = contract.normalize(frames).unsqueeze(0).to(device)
        out = model(x)[0].float().cpu().numpy()
        valid = scene["mask"]
        correlations.append(rank_correlation(out[valid].astype(np.float64), scene["depth"][valid].astype(np.float64)))
    return ProbeResult(decide(correlations, threshold), correlations)


def set_kind(model, metric: bool, source: str):
    """The model with `config.metric` set (configs are frozen dataclasses) and `kind_source` recorded."""
    if bool(model.config.metric) != bool(metric):
        model.config = dataclasses.replace(model.config, metric=bool(metric))
    model.kind_source = source
    return model


def resolve_kind(model, device="cpu", probe: bool = True) -> tuple[object, str]:
    """(model, one line saying its kind and why). A model whose file said nothing (`kind_source` "none") is
    probed; an inconclusive probe leaves it relative."""
    source = getattr(model, "kind_source", "none")
    if source == "none" and probe:
        result = probe_kind(model, device)
        if result.metric is not None:
            set_kind(model, result.metric, "probe")
            return model, (f"{'metric depth' if result.metric else 'relative disparity'} model (from a probe: "
                           f"{result.describe()})")
        return model, ("relative disparity model: the file does not say and a probe was inconclusive ("
                       f"{result.describe()}); pass --metric if it predicts metres")
    kind = "metric depth" if model.config.metric else "relative disparity"
    return model, f"{kind} model (from {SOURCES.get(source, source)})"
