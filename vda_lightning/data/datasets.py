"""IterableDatasets behind the DataModule: the combined training stream and the exactly-once validation stream.

Both run inside dataloader workers and batch there (the DataLoader gets batch_size=None), so one worker produces
one whole step: {"video": VideoBatch | None, "image": ImageBatch | None} for training, a VideoBatch for validation.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset

from .format import MAX_SIDE, SampleError, decode_members, parse_meta
from .streams import (
    SkipCounters,
    decode_stream,
    endless_shards,
    iter_tar_samples,
    ordered_assignment,
    reader_slot,
    shuffled,
)
from .transforms import AugmentConfig, apply_geometry, augment, center_crop_box, collate, finish_frames, to_tensors


def _describe(s: dict, rec, raw: dict) -> dict:
    s.pop("has_K", None)
    s.update(dataset=rec.dataset, sequence=rec.sequence, depth_kind=rec.depth_kind, key=raw["__key__"],
             shard=raw["__url__"], frame_indices=torch.tensor(rec.frame_indices, dtype=torch.int64))
    return s


def train_sample(raw: dict, clip_len: int, rng: np.random.Generator, aug: AugmentConfig, min_depth: float,
                 max_depth: float, need_target: bool, max_side: int = MAX_SIDE) -> dict:
    """A random clip_len window of a stored clip, decoded (only those frames), target built, augmented."""
    meta = parse_meta(raw, max_side)
    T = meta["num_frames"]
    if T < clip_len:
        raise SampleError("too_short", f"{T} frames < clip_len {clip_len}")
    start = int(rng.integers(0, T - clip_len + 1))
    rec = decode_members(raw, slice(start, start + clip_len), max_side)
    s = to_tensors(rec, min_depth, max_depth)
    if need_target and not ("mask" in s and bool(s["mask"].any())):
        raise SampleError("no_valid_target", f"no valid {rec.depth_kind} pixel (max_depth {max_depth})")
    return _describe(augment(s, rng, aug), rec, raw)


def val_sample(raw: dict, clip_len: int, out_hw: tuple[int, int] | None, min_depth: float, max_depth: float,
               max_side: int = MAX_SIDE) -> dict:
    """The first clip_len frames (all if 0), short-side resize + centre crop to out_hw (None: stored size)."""
    meta = parse_meta(raw, max_side)
    T = meta["num_frames"]
    if clip_len and T < clip_len:
        raise SampleError("too_short", f"{T} frames < val clip_len {clip_len}")
    rec = decode_members(raw, slice(0, clip_len or T), max_side)
    s = to_tensors(rec, min_depth, max_depth)
    if out_hw is not None:
        H, W = s["frames"].shape[-2:]
        s = apply_geometry(s, center_crop_box(H, W, out_hw), out_hw, flip=False)
    s["frames"] = finish_frames(s["frames"])
    return _describe(s, rec, raw)


class _DistAware(IterableDataset):
    """Rank and world size are set by the DataModule in the main process before workers start."""

    rank, world_size = 0, 1

    def set_distributed(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = int(rank), int(world_size)


class TrainStream(_DistAware):
    """Endless training steps mixing video sources (by weight) and, optionally, an image stream."""

    def __init__(self, video_sources: list[list[str]], weights: list[float] | None, image_urls: list[str],
                 clip_len: int, batch_size: int, image_batch_size: int, aug: AugmentConfig,
                 min_depth: float, max_depth: float, shuffle_buffer: int, image_shuffle_buffer: int, seed: int,
                 max_workers: int, image_need_target: bool = False, max_side: int = MAX_SIDE):
        super().__init__()
        self.max_side = max_side
        self.video_sources, self.image_urls = video_sources, image_urls
        w = np.asarray(weights if weights else [1.0] * len(video_sources), dtype=np.float64)
        if len(w) != len(video_sources) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"train_weights {weights} do not fit {len(video_sources)} video sources")
        self.weights = w / w.sum()
        self.clip_len, self.batch_size, self.image_batch_size = clip_len, batch_size, image_batch_size
        self.aug, self.min_depth, self.max_depth = aug, min_depth, max_depth
        self.shuffle_buffer, self.image_shuffle_buffer, self.seed = shuffle_buffer, image_shuffle_buffer, seed
        self.image_need_target = image_need_target
        self.video_counters = SkipCounters(max_workers, "train video")
        self.image_counters = SkipCounters(max_workers, "train image")
        self.epoch = torch.zeros(1, dtype=torch.int64).share_memory_()  # set by the loader each epoch

    def _samples(self, urls, clip_len, buffer, counters, need_target, rng, slot, n_slots, source_id):
        epoch = int(self.epoch[0])
        shards = endless_shards(urls, self.seed + 7919 * source_id, epoch, slot, n_slots)

        def raw_samples():  # endless; a reader whose shards never yield anything must fail, not spin
            empty = 0
            for url in shards:
                got = 0
                for raw in iter_tar_samples(url, counters):
                    got += 1
                    yield raw
                empty = 0 if got else empty + 1
                if empty > 2 * len(urls) + 2:
                    raise RuntimeError(f"{counters.name}: {empty} shards in a row gave no sample "
                                       f"(e.g. {url}); counts {counters.as_dict()}")

        fn = lambda raw: train_sample(raw, clip_len, rng, self.aug, self.min_depth, self.max_depth, need_target,  # noqa: E731
                                      self.max_side)
        yield from decode_stream(shuffled(raw_samples(), buffer, rng), fn, counters, max_failures_in_row=1000)
    def __iter__(self):
        slot, n_slots, _ = reader_slot(self.rank, self.world_size)
        rng = np.random.default_rng([self.seed, int(self.epoch[0]), slot])
        videos = [self._samples(u, self.clip_len, self.shuffle_buffer, self.video_counters, True, rng, slot,
                                n_slots, i) for i, u in enumerate(self.video_sources)] if self.batch_size else []
        images = (self._samples(self.image_urls, 1, self.image_shuffle_buffer, self.image_counters,
                                self.image_need_target, rng, slot, n_slots, 1000)
                  if self.image_batch_size and self.image_urls else None)
        while True:
            step = {"video": None, "image": None}
            if videos:
                picks = rng.choice(len(videos), size=self.batch_size, p=self.weights)
                step["video"] = collate([next(videos[i]) for i in picks])
            if images is not None:
                step["image"] = collate([next(images) for _ in range(self.image_batch_size)])
            yield step


class ValStream(_DistAware):
    """Validation clips in shard order, each exactly once across all readers, batched without padding."""

    def __init__(self, urls: list[str], clip_len: int, out_hw: tuple[int, int] | None, batch_size: int,
                 min_depth: float, max_depth: float, max_workers: int, max_side: int = MAX_SIDE):
        super().__init__()
        self.max_side = max_side
        self.urls, self.clip_len, self.out_hw, self.batch_size = urls, clip_len, out_hw, batch_size
        self.min_depth, self.max_depth = min_depth, max_depth
        self.counters = SkipCounters(max_workers, "val")

    def __iter__(self):
        slot, n_slots, _ = reader_slot(self.rank, self.world_size)
        urls, keep = ordered_assignment(self.urls, slot, n_slots)
        raws = (raw for url in urls for raw in iter_tar_samples(url, self.counters))
        if keep is not None:
            raws = (raw for i, raw in enumerate(raws) if i % n_slots == keep)
        fn = lambda raw: val_sample(raw, self.clip_len, self.out_hw, self.min_depth, self.max_depth,  # noqa: E731
                                    self.max_side)
        batch = []
        for s in decode_stream(raws, fn, self.counters):
            if batch and s["frames"].shape != batch[0]["frames"].shape:  # stored sizes differ: never mix them
                yield collate(batch)
                batch = []
            batch.append(s)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch:
            yield collate(batch)
