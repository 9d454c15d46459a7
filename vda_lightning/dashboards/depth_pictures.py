"""Depth pictures for a fixed set of validation clips, logged from rank 0 every N validations.

The first `num_clips` validation clips seen on rank 0 are copied to the CPU once (cut to `max_frames` frames) and
reused at every later validation, so the dashboard compares the same clips over training. Rendering costs one
extra forward of those few short clips plus some numpy at `max_side` pixels; the video is a few frames of H.264.

Media go to every logger: wandb gets `wandb.Image` / `wandb.Video`; CSV/TensorBoard loggers get PNG/MP4 files
under `<log_dir>/media/` (so a run with wandb disabled still has its pictures).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from lightning.pytorch import Callback
from lightning.pytorch.loggers import WandbLogger

from vda_lightning.dashboards.render import clip_pictures
from vda_lightning.io import write_bytes_atomic
from vda_lightning.viz import VideoWriter


def safe_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:64]


def write_png(path: Path, image: np.ndarray) -> None:
    """Atomic PNG write (temp name + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, buf.tobytes())


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps=fps, crf=23) as writer:
        for frame in frames:
            writer.write(frame)


def log_media(trainer, images: dict[str, tuple[np.ndarray, str]],
              videos: dict[str, tuple[list[np.ndarray], str]], fps: float = 6.0) -> None:
    """Send {key: (image, caption)} and {key: (frames, caption)} to every logger of the trainer (rank 0 only)."""
    if not trainer.is_global_zero:
        return
    step = trainer.global_step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            payload = {key: wandb.Image(image, caption=caption) for key, (image, caption) in images.items()}
            with tempfile.TemporaryDirectory(prefix="vda_video_") as tmp:
                for key, (frames, caption) in videos.items():
                    path = Path(tmp) / f"{safe_key(key)}.mp4"
                    write_mp4(path, frames, fps)
                    payload[key] = wandb.Video(str(path), caption=caption, format="mp4")
                logger.log_metrics(payload, step=step)  # wandb copies media into the run before returning
        elif getattr(logger, "log_dir", None):
            media = Path(logger.log_dir) / "media"
            for key, (image, _) in images.items():
                write_png(media / f"{safe_key(key)}_step{step:07d}.png", image)
            for key, (frames, _) in videos.items():
                write_mp4(media / f"{safe_key(key)}_step{step:07d}.mp4", frames, fps)


class DepthPictures(Callback):
    """Logs, per fixed validation clip: `pictures/<name>/compare` (input | prediction | GT | error image),
    `pictures/<name>/video` (side-by-side mp4) and `pictures/<name>/profile` (temporal profile, paper Fig. 9).

    Args:
        num_clips: validation clips to follow (the first ones rank 0 sees).
        every_n_validations: render at validation 1, 1 + n, 1 + 2n, ... (sanity checks excluded).
        max_frames: frames kept per clip (video length and profile width).
        max_side: longest side of each panel in pixels.
        min_side: clips smaller than this are enlarged (whole factor, nearest) so that tiny ones stay legible.
        fps: frame rate of the logged video.
        error_panel: add the AbsRel error map to the comparison image.
        video, profile: switch those pictures off.
    """

    def __init__(self, num_clips: int = 2, every_n_validations: int = 1, max_frames: int = 16,
                 max_side: int = 256, min_side: int = 128, fps: float = 6.0, error_panel: bool = True,
                 video: bool = True, profile: bool = True):
        if num_clips < 1 or every_n_validations < 1 or max_frames < 1:
            raise ValueError("num_clips, every_n_validations and max_frames must be ≥ 1")
        self.num_clips = num_clips
        self.every_n_validations = every_n_validations
        self.max_frames = max_frames
        self.max_side = max_side
        self.min_side = min_side
        self.fps = fps
        self.error_panel = error_panel
        self.video = video
        self.profile = profile
        self.clips: list[dict] = []
        self.validations = 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.is_global_zero or len(self.clips) >= self.num_clips or not isinstance(batch, dict):
            return
        for i in range(batch["frames"].shape[0]):
            if len(self.clips) >= self.num_clips:
                break
            clip = {"frames": batch["frames"][i, :self.max_frames].detach().cpu().clone(),
                    "dataset": batch.get("dataset", ["val"] * (i + 1))[i],
                    "sequence": batch.get("sequence", [f"clip{len(self.clips)}"] * (i + 1))[i]}
            for key in ("depth", "mask"):
                if key in batch:
                    clip[key] = batch[key][i, :self.max_frames].detach().cpu().clone()
            self.clips.append(clip)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.clips:
            return
        self.validations += 1
        if (self.validations - 1) % self.every_n_validations:
            return
        images, videos = {}, {}
        for index, clip in enumerate(self.clips):
            with torch.no_grad():  # the module itself, not a DDP wrapper: no collective call on rank 0 alone
                pred = pl_module(clip["frames"][None].to(pl_module.device))[0].float().cpu().numpy()
            depth = clip["depth"].numpy() if "depth" in clip else None
            mask = clip["mask"].numpy() if "mask" in clip else None
            pics = clip_pictures(clip["frames"].numpy(), pred, depth, mask, self.max_side, self.error_panel,
                                 min_side=self.min_side)
            name = f"pictures/{safe_key(clip['dataset'])}_{index}"
            caption = f"{clip['dataset']}/{clip['sequence']} step {trainer.global_step}"
            if pics["abs_rel"] is not None:
                caption += f" AbsRel≈{pics['abs_rel']:.3f}"
            images[f"{name}/compare"] = (pics["compare"], caption)
            if self.profile:
                images[f"{name}/profile"] = (pics["profile"], caption)
            if self.video:
                videos[f"{name}/video"] = (pics["video"], caption)
        log_media(trainer, images, videos, self.fps)
