"""LightningDataModules: video clips with ground truth + image samples for training, exactly-once validation.

Every init argument is a plain typed value so LightningCLI can set it from YAML. Shard arguments take a brace
pattern ('shards/train-{000000..000099}.tar'), '::'-joined patterns, a glob, a folder, or a list of these; for
`train_shards` a list means one *source* per entry, mixed per sample by `train_weights` (equal by default, the
paper's uniform sampling over datasets).
"""
from __future__ import annotations

import logging
import os

import lightning as L
import torch
import webdataset as wds

from ..io import rank_world
from .datasets import TrainStream, ValStream
from .shards import count_samples, expand_shards
from .synthetic_scenes import generate_synthetic_shards
from .transforms import AugmentConfig

log = logging.getLogger("vda_lightning.data")


def _hw(size: int | list[int]) -> tuple[int, int]:
    hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    if hw[0] % 14 or hw[1] % 14 or min(hw) <= 0:
        raise ValueError(f"crop size {size} must be positive multiples of 14 (the ViT patch size)")
    return hw


class _EpochLoader(wds.WebLoader):
    """WebLoader that tells its dataset which epoch starts (fresh shard order and augmentation each epoch)."""

    def __init__(self, dataset, epoch_fn=None, **kw):
        super().__init__(dataset, **kw)
        self._dataset, self._epoch_fn, self._count = dataset, epoch_fn, 0

    def iterator1(self):
        self._count += 1
        epoch = self._epoch_fn() if self._epoch_fn is not None else None
        self._dataset.epoch[0] = self._count if epoch is None else epoch
        return super().iterator1()


class VideoDepthDataModule(L.LightningDataModule):
    """Training: `epoch_length` steps per rank of {"video": B clips, "image": image_batch_size images}.

    Args (selection): clip_len frames per training clip; crop_size output size (int or [h, w], multiples of 14);
    val_size validation short-side resize + centre crop (0 = keep stored size); val_clip_len (0 = whole stored
    clip); max_depth masks metric depth beyond it (0 = no limit); scale/ratio/hflip/jitter control augmentation;
    synthetic=True writes (once) and uses the procedural scenes in `synthetic_dir` for any split not given.
    """

    def __init__(self, train_shards: str | list[str] | None = None, val_shards: str | list[str] | None = None,
                 image_shards: str | list[str] | None = None, train_weights: list[float] | None = None,
                 clip_len: int = 32, crop_size: int | list[int] = 518, val_size: int | list[int] = 518,
                 val_clip_len: int = 0, batch_size: int = 1, image_batch_size: int = 0, val_batch_size: int = 1,
                 num_workers: int = 2, val_num_workers: int = 1, epoch_length: int = 1000,
                 shuffle_buffer: int = 16, image_shuffle_buffer: int = 128, min_depth: float = 1e-3,
                 max_depth: float = 0.0, scale_min: float = 0.5, scale_max: float = 1.0, ratio_min: float = 0.8,
                 ratio_max: float = 1.25, hflip: float = 0.5, brightness: float = 0.1, contrast: float = 0.2,
                 saturation: float = 0.2, hue: float = 0.02, image_need_target: bool = False,
                 pin_memory: bool = True, prefetch_factor: int = 2, persistent_workers: bool = False, seed: int = 0,
                 synthetic: bool = False, synthetic_dir: str = "data/synthetic", synthetic_train_clips: int = 256,
                 synthetic_val_clips: int = 16, synthetic_images: int = 0, synthetic_height: int = 112,
                 synthetic_width: int = 154):
        super().__init__()
        self.save_hyperparameters()
        self.hp = self.hparams
        self.crop_hw = _hw(crop_size)
        self.val_hw = None if val_size in (0, [0], None) else _hw(val_size)
        self.train_ds: TrainStream | None = None
        self.val_ds: ValStream | None = None

    # -- preparation -------------------------------------------------------------------------------------------
    def _synthetic_kw(self) -> dict:
        hp = self.hp
        return dict(out_dir=hp.synthetic_dir, n_train_clips=hp.synthetic_train_clips,
                    n_val_clips=hp.synthetic_val_clips, clip_len=max(hp.clip_len, hp.val_clip_len),
                    height=hp.synthetic_height, width=hp.synthetic_width, seed=hp.seed,
                    n_image_samples=hp.synthetic_images)

    def prepare_data(self) -> None:
        if self.hp.synthetic:  # idempotent: complete shards are not rewritten
            generate_synthetic_shards(**self._synthetic_kw())

    def _spec(self, name: str):
        spec = getattr(self.hp, name)
        if spec or not self.hp.synthetic:
            return spec
        split = {"train_shards": "train", "val_shards": "val", "image_shards": "image"}[name]
        if split == "image" and not self.hp.synthetic_images:
            return None
        return os.path.join(self.hp.synthetic_dir, f"{split}-*.tar")

    def setup(self, stage: str | None = None) -> None:
        hp = self.hp
        if stage in (None, "fit") and self.train_ds is None:
            spec = self._spec("train_shards")
            if not spec:
                raise ValueError("train_shards is empty (set train_shards, or synthetic: true)")
            sources = [expand_shards(s, "train_shards") for s in ([spec] if isinstance(spec, str) else spec)]
            image_urls = expand_shards(self._spec("image_shards"), "image_shards")
            if hp.image_batch_size and not image_urls:
                log.warning("image_batch_size=%d but no image_shards: training steps carry no images",
                            hp.image_batch_size)
            aug = AugmentConfig(out_hw=self.crop_hw, scale=(hp.scale_min, hp.scale_max),
                                ratio=(hp.ratio_min, hp.ratio_max), hflip=hp.hflip, brightness=hp.brightness,
                                contrast=hp.contrast, saturation=hp.saturation, hue=hp.hue)
            self.train_ds = TrainStream(sources, hp.train_weights, image_urls, hp.clip_len, hp.batch_size,
                                        hp.image_batch_size, aug, hp.min_depth, hp.max_depth, hp.shuffle_buffer,
                                        hp.image_shuffle_buffer, hp.seed, max(1, hp.num_workers),
                                        hp.image_need_target)
            n = count_samples([u for s in sources for u in s])
            log.info("train: %d video source(s), %s clips indexed, %d image shards; %d steps/epoch/rank",
                     len(sources), "?" if n is None else n, len(image_urls), hp.epoch_length)
        if stage in (None, "fit", "validate", "test") and self.val_ds is None:
            spec = self._spec("val_shards")
            if spec:
                urls = expand_shards(spec, "val_shards")
                self.val_ds = ValStream(urls, hp.val_clip_len, self.val_hw, hp.val_batch_size, hp.min_depth,
                                        hp.max_depth, max(1, hp.val_num_workers))

    # -- loaders ------------------------------------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return rank_world(from_environment=True)

    def _loader_kw(self, workers: int) -> dict:
        kw = dict(batch_size=None, num_workers=workers, pin_memory=self.hp.pin_memory and torch.cuda.is_available())
        if workers > 0:
            kw.update(prefetch_factor=self.hp.prefetch_factor, persistent_workers=self.hp.persistent_workers)
        return kw

    def train_dataloader(self):
        if self.train_ds is None:
            self.setup("fit")
        self.train_ds.set_distributed(*self._rank_world())
        trainer = getattr(self, "trainer", None)
        epoch_fn = (lambda: trainer.current_epoch) if trainer is not None else None
        loader = _EpochLoader(self.train_ds, epoch_fn=epoch_fn, **self._loader_kw(self.hp.num_workers))
        return loader.with_epoch(self.hp.epoch_length).with_length(self.hp.epoch_length, silent=True)

    def val_dataloader(self):
        if self.val_ds is None:
            self.setup("validate")
        if self.val_ds is None:
            return []
        self.val_ds.set_distributed(*self._rank_world())
        return wds.WebLoader(self.val_ds, **self._loader_kw(self.hp.val_num_workers))

    # -- reporting ----------------------------------------------------------------------------------------------
    def skip_counts(self) -> dict[str, dict[str, int]]:
        """Good/skipped sample counts per stream and reason (this rank, all its workers, since start)."""
        out = {}
        if self.train_ds is not None:
            out["train_video"] = self.train_ds.video_counters.as_dict()
            out["train_image"] = self.train_ds.image_counters.as_dict()
        if self.val_ds is not None:
            out["val"] = self.val_ds.counters.as_dict()
        return out

    def data_metrics(self) -> dict[str, float]:
        """Flat {"data/<stream>_<reason>": count} of the non-zero counters, ready for LightningModule.log_dict."""
        return {f"data/{stream}_{k}": float(v) for stream, c in self.skip_counts().items()
                for k, v in c.items() if v}

