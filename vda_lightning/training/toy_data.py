"""A tiny procedural clip source for tests and smoke runs: every batch is a pure function of (seed, position).

Scenes: a slanted ground plane plus a disc moving across it, shaded so that nearer surfaces are brighter, over a
texture fixed to the scene. Depth is therefore learnable from the frames by a small head in a few hundred steps.
The train loader is stateful (`state_dict` / `load_state_dict`, picked up by Lightning's checkpoints), so a
resumed run sees exactly the batches an uninterrupted run would have seen.
This is not the synthetic-scene generator of `vda_lightning.data`; it only fakes the batch contract.
"""
from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader


def toy_clip(seed: int, num_frames: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """One clip: frames (T, 3, H, W) in [0, 1], disparity/depth (T, H, W), mask, K (3, 3), poses (T, 4, 4)."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    plane = 0.2 + 0.3 * rand(1) + (0.4 + 0.6 * rand(1)) * yy + 0.2 * (rand(1) - 0.5) * xx
    start, velocity = 0.2 + 0.6 * rand(2), (rand(2) - 0.5) * 0.1
    radius, disc_disp = 0.12 + 0.15 * rand(1), 1.2 + 0.6 * rand(1)
    colour = 0.4 + 0.6 * rand(3, 1, 1)
    texture = rand(1, height + num_frames, width + num_frames)
    frames, disps = [], []
    for t in range(num_frames):
        cy, cx = (start + velocity * t).tolist()
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius.item() ** 2
        disp = torch.where(inside, disc_disp.expand_as(plane), plane)
        shade = disp / 2.0  # nearer (higher disparity) -> brighter
        tex = texture[:, t : t + height, t : t + width]  # slow texture drift: the frames are not static
        frames.append((colour * (0.25 + 0.75 * shade) * (0.85 + 0.15 * tex)).clamp(0, 1))
        disps.append(disp)
    disparity = torch.stack(disps)
    focal = 0.8 * width
    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    return {
        "frames": torch.stack(frames),
        "disparity": disparity,
        "depth": 1.0 / disparity,
        "mask": torch.ones_like(disparity, dtype=torch.bool),
        "K": K,
        "poses": torch.eye(4).expand(num_frames, 4, 4).clone(),
    }


def toy_batch(seed: int, batch_size: int, num_frames: int, height: int, width: int, name: str = "toy") -> dict:
    clips = [toy_clip(seed * 1000 + i, num_frames, height, width) for i in range(batch_size)]
    batch = {k: torch.stack([c[k] for c in clips]) for k in clips[0]}
    batch["has_pose"] = torch.ones(batch_size, dtype=torch.bool)
    batch["dataset"] = [name] * batch_size
    batch["sequence"] = [f"{name}_{seed}_{i}" for i in range(batch_size)]
    batch["depth_kind"] = ["relative"] * batch_size
    return batch


class StepwiseLoader:
    """Endless train batches; batch n comes from seed (seed, n). Stateful so resuming continues at n.

    Lightning's training fetcher pulls `lookahead` (= 1 in lightning 2.6) batch beyond the step being run, so at
    checkpoint time one more batch has been handed out than trained on; the saved position discounts it
    (checked by the deterministic-resume test).
    """

    lookahead = 1

    def __init__(self, seed, batch_size, num_frames, height, width, image_batch_size=0, length=None):
        self.seed, self.batch_size, self.num_frames = seed, batch_size, num_frames
        self.height, self.width, self.image_batch_size = height, width, image_batch_size
        self.length, self.position = length, 0

    def __len__(self):
        if self.length is None:
            raise TypeError("endless loader")
        return self.length

    def __iter__(self):
        while self.length is None or self.position < self.length:
            n = self.position
            self.position += 1
            video = toy_batch(self.seed + 7919 * n, self.batch_size, self.num_frames, self.height, self.width)
            image = None
            if self.image_batch_size:
                image = toy_batch(self.seed + 7919 * n + 1, self.image_batch_size, 1, self.height, self.width)
                image = {k: image[k] for k in ("frames", "dataset", "sequence")}  # unlabelled: the teacher labels
            yield {"video": video, "image": image}
        self.position = 0

    def state_dict(self) -> dict:
        return {"position": max(0, self.position - self.lookahead)}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


class ToyDataModule(L.LightningDataModule):
    """Train: `StepwiseLoader`; validation: `val_clips` fixed held-out clips (seeds disjoint from training)."""

    def __init__(
        self,
        seed: int = 0,
        batch_size: int = 2,
        image_batch_size: int = 0,
        num_frames: int = 4,
        height: int = 42,
        width: int = 42,
        val_clips: int = 4,
        val_num_frames: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self._train: StepwiseLoader | None = None

    def train_dataloader(self):
        h = self.hparams
        if self._train is None:
            self._train = StepwiseLoader(
                h.seed, h.batch_size, h.num_frames, h.height, h.width, h.image_batch_size, h.steps_per_epoch
            )
        return self._train

    def val_dataloader(self):
        h = self.hparams
        frames = h.val_num_frames or h.num_frames
        base = 10**9 + h.seed  # far from every training seed
        batches = [toy_batch(base + i, 1, frames, h.height, h.width, name="toy_val") for i in range(h.val_clips)]
        return DataLoader(batches, batch_size=None)  # a plain list would read as several dataloaders

