"""`augment_on: device`: kornia's VideoSequential applies, after the copy to the device, the parameters the workers
drew, and gives the CPU path's clip (fixed parameters, stored sizes that differ in one batch), the same parameter
statistics, and the same training run through Lightning (to the CPU path's uint8 rounding)."""
from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from vda_lightning.data import VideoDepthDataModule
from vda_lightning.data.device_augment import DeviceAugmentation
from vda_lightning.data.format import ClipRecord
from vda_lightning.data.transforms import (
    PARAM_FIELDS,
    AugmentConfig,
    apply_augmentation,
    augment,
    collate,
    color_matrix,
    to_tensors,
)
from vda_lightning.scenes import render_clip
from vda_lightning.training import VideoDepthModule

FRAME_TOL = 2 / 255  # the CPU path resizes uint8 frames (rounded to 1/255), the device path float32 ones


def _sample(seed: int, height: int, width: int, frames: int = 3) -> dict:
    c = render_clip([seed], frames, height, width)
    rec = ClipRecord(c["frames"], "synthetic", f"s{seed}", list(range(frames)), depth=c["depth"].astype(np.float32),
                     mask=c["mask"], K=c["K"], poses=c["poses"])
    return to_tensors(rec, 1e-3, 0.0)


def _copy(s: dict) -> dict:
    return {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}


def _both_paths(samples: list[dict], params: list[torch.Tensor], out_hw):
    cpu = collate([apply_augmentation(_copy(s), p, out_hw) for s, p in zip(samples, params)])
    stored = collate([{**_copy(s), "augment_params": p} for s, p in zip(samples, params)])
    return cpu, DeviceAugmentation(out_hw)(stored), stored


def test_fixed_parameters_give_the_cpu_paths_clip_also_for_mixed_stored_sizes():
    out_hw = (28, 42)
    samples = [_sample(1, 56, 84), _sample(2, 40, 70), _sample(3, 56, 84)]
    params = [torch.tensor(p, dtype=torch.float64) for p in (
        [10, 4, 60, 44, 1, 0.08, 1.15, 0.85, 0.015],    # a downscaling crop, flipped, every colour knob moved
        [3, 9, 21, 14, 0, -0.05, 0.9, 1.2, -0.02],      # an upscaling crop of the smaller stored clip
        [0, 0, 84, 56, 1, 0.0, 1.0, 1.0, 0.0])]         # the whole frame, flip only
    cpu, dev, stored = _both_paths(samples, params, out_hw)
    assert stored["frames"].dtype == torch.uint8 and stored["frames"].shape[-2:] == (56, 84)  # padded to the largest
    assert dev["frames"].shape == cpu["frames"].shape == (3, 3, 3, *out_hw) and dev["frames"].dtype == torch.float32
    diff = (dev["frames"] - cpu["frames"]).abs()
    assert diff.max() <= FRAME_TOL and diff.mean() < 0.6 / 255  # the uint8 resize rounds with a bias of ~0.4/255
    for k in ("disparity", "depth", "mask", "poses"):  # nearest-exact and exact geometry: equal
        assert dev[k].dtype == cpu[k].dtype and torch.equal(dev[k], cpu[k]), k
    assert torch.allclose(dev["K"], cpu["K"], rtol=1e-6, atol=1e-4)
    assert not torch.equal(cpu["K"][0], stored["K"][0])  # the geometry did move K
    # Each clip's parameters, as kornia applied them, are the drawn ones on every frame (same_on_frame).
    aug = DeviceAugmentation(out_hw)
    aug(stored)
    crop, flip = aug.video._params[0].data, aug.video._params[1].data
    src = crop["src"].reshape(3, 3, 4, 2)
    assert torch.equal(src, src[:, :1].expand_as(src))
    x0y0 = src[:, 0, 0]
    assert x0y0.tolist() == [[10, 4], [3, 9], [0, 0]] and (src[:, 0, 2] - x0y0 + 1).tolist() == [[60, 44], [21, 14],
                                                                                                  [84, 56]]
    assert flip["batch_prob"].reshape(3, 3).tolist() == [[True] * 3, [False] * 3, [True] * 3]


def _applied(aug: DeviceAugmentation, n_clips: int, frames: int) -> dict[str, np.ndarray]:
    """The statistics' inputs from what kornia applied: crop box, flip, colour offset t and trace of A."""
    crop, flip, colour = (p.data for p in aug.video._params)
    src = crop["src"].reshape(n_clips, frames, 4, 2)[:, 0].double()
    w, h = src[:, 2, 0] - src[:, 0, 0] + 1, src[:, 2, 1] - src[:, 0, 1] + 1
    return {"x0": src[:, 0, 0], "y0": src[:, 0, 1], "w": w, "h": h,
            "flip": flip["batch_prob"].reshape(n_clips, frames)[:, 0].double(),
            "t": colour["t"].reshape(n_clips, frames, 3)[:, 0, 0].double(),
            "trace": colour["A"].reshape(n_clips, frames, 3, 3)[:, 0].diagonal(dim1=-2, dim2=-1).sum(-1).double()}


def test_parameter_statistics_of_the_two_paths_agree():
    """Independent streams (different seeds) through each path: every statistic's means agree within 4 standard
    errors, and each clip's frames share one draw on the device."""
    cfg, out_hw, n, frames = AugmentConfig(hflip=0.3), (28, 42), 400, 2
    base = _sample(0, 40, 70, frames)
    cpu_rows, device_batch = [], []
    rng_cpu, rng_dev = np.random.default_rng(11), np.random.default_rng(12)
    small = {k: base[k] for k in ("frames", "K", "poses", "has_K")}
    for _ in range(n):
        cpu_rows.append(augment(_copy(small), rng_cpu, cfg, out_hw)["augment_params"])
        device_batch.append(augment(_copy(small), rng_dev, cfg, out_hw, on_device=True))
    aug = DeviceAugmentation(out_hw)
    aug(collate(device_batch))
    dev = _applied(aug, n, frames)
    p = torch.stack(cpu_rows)
    As = [color_matrix(*row[5:].tolist()) for row in p]
    cpu = {name: p[:, i] for i, name in enumerate(PARAM_FIELDS[:5])}
    cpu.update(t=torch.stack([t[0] for _, t in As]), trace=torch.stack([a.trace() for a, _ in As]))
    for k, a in cpu.items():
        b = dev[k]
        se = float(np.sqrt(float(a.var()) / n + float(b.var()) / n))
        assert abs(float(a.mean() - b.mean())) <= 4 * se + 1e-9, (k, float(a.mean()), float(b.mean()), se)
        assert 0.75 < float(b.std()) / max(float(a.std()), 1e-12) < 1.33, k
    assert abs(float(dev["flip"].mean()) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    assert (dev["x0"] + dev["w"] <= 70).all() and (dev["y0"] + dev["h"] <= 40).all()  # inside the stored frame


def test_a_bad_augment_on_is_refused():
    with pytest.raises(ValueError, match="augment_on must be 'cpu' or 'device', got 'gpu'"):
        VideoDepthDataModule(augment_on="gpu")


class _FirstBatch(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            self.video = {k: v for k, v in batch["video"].items() if torch.is_tensor(v)}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses = getattr(self, "losses", []) + [float(outputs["loss"])]


def _fit(shards, tmp_path, augment_on: str) -> _FirstBatch:
    torch.manual_seed(0)
    data = VideoDepthDataModule(train_shards=str(shards / "train-*.tar"), clip_len=4, crop_size=[28, 28],
                                batch_size=2, num_workers=0, epoch_length=3, augment_on=augment_on)
    module, seen = VideoDepthModule(encoder="vitt", lr=1e-3), _FirstBatch()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[seen], default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=data)
    return seen


def test_training_through_lightning_matches_the_cpu_path(synthetic_shards, tmp_path):
    """The same seed gives the same sample stream either way: the step sees the CPU path's batch (to rounding) and
    its loss. (Later steps are not compared: AdamW's first updates are ~lr * sign(gradient), which rounding flips
    wherever a gradient is ~0.)"""
    cpu = _fit(synthetic_shards, tmp_path / "cpu", "cpu")
    dev = _fit(synthetic_shards, tmp_path / "device", "device")
    batch_cpu, batch_dev = cpu.video, dev.video
    assert batch_dev["frames"].dtype == torch.float32 and batch_dev["frames"].shape == (2, 4, 3, 28, 28)
    assert torch.equal(batch_dev["augment_params"], batch_cpu["augment_params"])
    assert (batch_dev["frames"] - batch_cpu["frames"]).abs().max() <= FRAME_TOL
    assert torch.equal(batch_dev["disparity"], batch_cpu["disparity"]) and torch.equal(batch_dev["mask"],
                                                                                       batch_cpu["mask"])
    assert len(dev.losses) == len(cpu.losses) == 3 and all(np.isfinite(dev.losses))
    assert dev.losses[0] == pytest.approx(cpu.losses[0], rel=2e-3)
