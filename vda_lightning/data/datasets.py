"""IterableDatasets behind the DataModule: the combined training stream and the exactly-once validation stream.

Both run inside dataloader workers and batch there (the DataLoader gets batch_size=None), so one worker produces
one whole step: {"video": VideoBatch | None, "image": ImageBatch | None} for training, a VideoBatch for validation.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Ge, Le, Lt
from torch.utils.data import IterableDataset
from typing_extensions import TypedDict

from ..io.benchmarks import stream_benchmark
from .format import MAX_SIDE, SampleError, decode_members, parse_meta
from .streams import (
    STRICT,
    Count,
    SkipCounters,
    SourceReader,
    SourceState,
    decode_stream,
    iter_tar_samples,
    ordered_assignment,
    reader_slot,
)
from .transforms import AugmentConfig, apply_geometry, augment, center_crop_box, collate, finish_frames, to_tensors


class PCG64Words(TypedDict):
    __pydantic_config__ = STRICT
    state: Annotated[int, Ge(0), Lt(2**128)]
    inc: Annotated[int, Ge(0), Lt(2**128)]


class RngState(TypedDict):
    """`numpy.random.default_rng(...).bit_generator.state` (PCG64), as a reader saves it."""

    __pydantic_config__ = STRICT
    bit_generator: Literal["PCG64"]
    state: PCG64Words
    has_uint32: Annotated[int, Ge(0), Le(1)]
    uinteger: Annotated[int, Ge(0), Lt(2**32)]


class ReaderState(TypedDict):
    """What one training reader saves after each step (`TrainStream.__iter__`'s `_reader.state`)."""

    __pydantic_config__ = STRICT
    steps: Count
    rng: RngState
    video: list[SourceState]
    image: SourceState | None


def _describe(s: dict, rec, raw: dict) -> dict:
    s.pop("has_K", None)
    s.update(dataset=rec.dataset, sequence=rec.sequence, depth_kind=rec.depth_kind, key=raw["__key__"],
             shard=raw["__url__"], frame_indices=torch.tensor(rec.frame_indices, dtype=torch.int64))
    return s


def train_sample(raw: dict, clip_len: int, rng: np.random.Generator, aug: AugmentConfig, out_hw: tuple[int, int],
                 min_depth: float, max_depth: float, need_target: bool, max_side: int = MAX_SIDE,
                 on_device: bool = False, defer_jpeg: bool | None = None) -> dict:
    """A random clip_len window of a stored clip, decoded (only those frames), target built, augmented here or,
    `on_device`, only given its drawn parameters (`transforms.augment`); `defer_jpeg` (default: `on_device`)
    leaves JPEG frames as bytes for the device (data/device_decode.py)."""
    meta = parse_meta(raw, max_side)
    T = meta["num_frames"]
    if T < clip_len:
        raise SampleError("too_short", f"{T} frames < clip_len {clip_len}")
    start = int(rng.integers(0, T - clip_len + 1))
    # on_device: JPEG frames stay bytes, decoded with the augmentation on the accelerator (data/device_decode.py)
    rec = decode_members(raw, slice(start, start + clip_len), max_side=max_side,
                         defer_jpeg=on_device if defer_jpeg is None else defer_jpeg)
    s = to_tensors(rec, min_depth, max_depth)
    if need_target and not ("mask" in s and bool(s["mask"].any())):
        raise SampleError("no_valid_target", f"no valid {rec.depth_kind} pixel (max_depth {max_depth})")
    return _describe(augment(s, rng, aug, out_hw, on_device), rec, raw)


def val_sample(raw: dict, clip_len: int, out_hw: tuple[int, int] | None, min_depth: float, max_depth: float,
               max_side: int = MAX_SIDE) -> dict:
    """The first clip_len frames (all if 0), short-side resize + centre crop to out_hw (None: stored size)."""
    meta = parse_meta(raw, max_side)
    T = meta["num_frames"]
    if clip_len and T < clip_len:
        raise SampleError("too_short", f"{T} frames < val clip_len {clip_len}")
    rec = decode_members(raw, slice(0, clip_len or T), max_side=max_side)
    s = to_tensors(rec, min_depth, max_depth)
    if out_hw is not None:
        H, W = s["frames"].shape[-2:]
        s = apply_geometry(s, center_crop_box(H, W, out_hw), out_hw, flip=False)
    s["frames"] = finish_frames(s["frames"])
    s["benchmark"] = ""
    return _describe(s, rec, raw)


def _frame_intrinsics(rec) -> torch.Tensor:
    """(T, 3, 3) K of every frame (the clip's K, or `extra.K_per_frame` where vda-shard kept differing ones)."""
    T = rec.num_frames
    if rec.K is None:
        return torch.zeros(T, 3, 3, dtype=torch.float64)
    per_frame = rec.extra.get("K_per_frame") if isinstance(rec.extra, dict) else None
    if per_frame is not None and len(per_frame) == T:
        return torch.tensor(per_frame, dtype=torch.float64).reshape(T, 3, 3)
    return torch.from_numpy(rec.K).double().expand(T, 3, 3).clone()


def benchmark_sample(raw: dict, benchmark: str, max_side: int = MAX_SIDE) -> dict:
    """A stored benchmark sequence as the published evaluation reads it: every frame, uint8 RGB at the stored size,
    ground-truth depth in float64 metres (0 = invalid; no depth range applied: the benchmark's protocol masks)."""
    rec = decode_members(raw, depth_dtype=np.float64, max_side=max_side)
    if rec.depth is None or rec.depth_kind != "metric_depth":
        raise SampleError("bad_metadata", f"benchmark {benchmark!r} needs metric depth, the sample holds "
                                      f"{rec.depth_kind!r}")
    T = rec.num_frames
    depth = np.where(np.isfinite(rec.depth), rec.depth, 0.0)
    if rec.mask is not None:
        depth = np.where(rec.mask, depth, 0.0)
    s = {"rgb": torch.from_numpy(rec.frames),  # (T, H, W, 3) uint8 as stored: what the benchmark inference reads
         "depth": torch.from_numpy(depth),
         "K": _frame_intrinsics(rec),
         "poses": (torch.eye(4, dtype=torch.float64).repeat(T, 1, 1) if rec.poses is None
                   else torch.from_numpy(rec.poses)),
         "has_pose": rec.poses is not None and rec.K is not None, "benchmark": benchmark}
    return _describe(s, rec, raw)


class _DistAware(IterableDataset):
    """Rank and world size are set by the DataModule in the main process before workers start."""

    rank, world_size = 0, 1

    def set_distributed(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = int(rank), int(world_size)


class TrainStream(_DistAware):
    """Endless training steps mixing video sources (by weight) and, optionally, an image stream.

    Each dataloader worker runs one *reader*; every step it yields carries `_reader` = {"reader": index, "state":
    the reader's position after this step}, which the DataModule keeps for the steps the training loop takes (and
    strips from the batch). `resume` (set by the DataModule before the workers start) makes the readers continue
    from such states: worker w then runs reader (consumed + w) % workers, so that the DataLoader's round robin
    hands out the steps in the uninterrupted run's order.
    """

    def __init__(self, video_sources: list[list[str]], weights: list[float] | None, image_urls: list[str],
                 clip_len: int, batch_size: int, image_batch_size: int, aug: AugmentConfig,
                 out_hw: tuple[int, int], min_depth: float, max_depth: float, shuffle_buffer: int,
                 image_shuffle_buffer: int, seed: int, max_workers: int, image_need_target: bool = False,
                 max_side: int = MAX_SIDE, augment_on: str = "cpu"):
        super().__init__()
        self.max_side, self.augment_on = max_side, augment_on
        self.video_sources, self.image_urls = video_sources, image_urls
        w = np.asarray(weights if weights else [1.0] * len(video_sources), dtype=np.float64)
        if len(w) != len(video_sources) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"train_weights {weights} do not fit {len(video_sources)} video sources")
        self.weights = w / w.sum()
        self.clip_len, self.batch_size, self.image_batch_size = clip_len, batch_size, image_batch_size
        self.aug, self.out_hw, self.min_depth, self.max_depth = aug, out_hw, min_depth, max_depth
        self.shuffle_buffer, self.image_shuffle_buffer, self.seed = shuffle_buffer, image_shuffle_buffer, seed
        self.image_need_target = image_need_target
        self.video_counters = SkipCounters(max_workers, "train video")
        self.image_counters = SkipCounters(max_workers, "train image")
        self.epoch = torch.zeros(1, dtype=torch.int64).share_memory_()  # set by the loader each epoch
        self.resume: dict | None = None  # {"epoch", "consumed", "readers": {reader: state}} for one epoch

    def _reader(self, urls, clip_len, buffer, counters, need_target, epoch, slot, n_slots, source_id):
        def decode(raw, rng):
            return train_sample(raw, clip_len, rng, self.aug, self.out_hw, self.min_depth, self.max_depth,
                                need_target, self.max_side, self.augment_on == "device")

        return SourceReader(urls, self.seed + 7919 * source_id, epoch, slot, n_slots, buffer, counters, decode)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = int(self.epoch[0])
        plan = self.resume if self.resume is not None and int(self.resume["epoch"]) == epoch else None
        reader = (int(plan["consumed"]) + wid) % workers if plan else wid
        slot, n_slots = self.rank * workers + reader, self.world_size * workers
        rng = np.random.default_rng([self.seed, epoch, slot])
        videos = [self._reader(u, self.clip_len, self.shuffle_buffer, self.video_counters, True, epoch, slot,
                               n_slots, i) for i, u in enumerate(self.video_sources)] if self.batch_size else []
        images = (self._reader(self.image_urls, 1, self.image_shuffle_buffer, self.image_counters,
                               self.image_need_target, epoch, slot, n_slots, 1000)
                  if self.image_batch_size and self.image_urls else None)
        steps = 0
        saved = plan["readers"].get(reader) if plan else None
        if saved is not None:  # continue where this reader's last step taken by the training loop left it
            rng.bit_generator.state = saved["rng"]
            for source, state in zip(videos, saved["video"]):
                source.restore(state)
            if images is not None and saved["image"] is not None:
                images.restore(saved["image"])
            steps = int(saved["steps"])
        while True:
            step = {"video": None, "image": None}
            if videos:
                picks = rng.choice(len(videos), size=self.batch_size, p=self.weights)
                step["video"] = collate([videos[i].next_sample(rng) for i in picks])
            if images is not None:
                step["image"] = collate([images.next_sample(rng) for _ in range(self.image_batch_size)])
            steps += 1
            step["_reader"] = {"reader": reader, "state": {
                "steps": steps, "rng": rng.bit_generator.state, "video": [v.state() for v in videos],
                "image": None if images is None else images.state()}}
            yield step


class ValStream(_DistAware):
    """Validation clips in shard order, each exactly once across all readers, batched without padding.

    A clip whose dataset a registered benchmark scores (`io.benchmarks.stream_benchmark`: its own name,
    or as declared in `benchmarks` {dataset: benchmark or None}) comes whole, at its stored size, alone in its
    batch (`benchmark_sample`); the others as `val_sample` makes them.
    """

    def __init__(self, urls: list[str], clip_len: int, out_hw: tuple[int, int] | None, batch_size: int,
                 min_depth: float, max_depth: float, max_workers: int,
                 benchmarks: dict[str, str | None] | None = None, max_side: int = MAX_SIDE):
        super().__init__()
        self.max_side = max_side
        self.urls, self.clip_len, self.out_hw, self.batch_size = urls, clip_len, out_hw, batch_size
        self.min_depth, self.max_depth = min_depth, max_depth
        self.benchmarks = dict(benchmarks or {})
        self.counters = SkipCounters(max_workers, "val")

    def _sample(self, raw: dict) -> dict:
        benchmark = stream_benchmark(parse_meta(raw, self.max_side)["dataset"], self.benchmarks)
        if benchmark:
            return benchmark_sample(raw, benchmark, self.max_side)
        return val_sample(raw, self.clip_len, self.out_hw, self.min_depth, self.max_depth, self.max_side)

    def __iter__(self):
        slot, n_slots, _ = reader_slot(self.rank, self.world_size)
        urls, keep = ordered_assignment(self.urls, slot, n_slots)
        raws = (raw for url in urls for raw in iter_tar_samples(url, self.counters))
        if keep is not None:
            raws = (raw for i, raw in enumerate(raws) if i % n_slots == keep)
        batch = []
        for s in decode_stream(raws, self._sample, self.counters):
            if s["benchmark"]:  # a whole benchmark sequence is its own batch, kept in float64
                if batch:
                    yield collate(batch)
                    batch = []
                yield collate([s], keep_dtypes=True)
                continue
            if batch and s["frames"].shape != batch[0]["frames"].shape:  # stored sizes differ: never mix them
                yield collate(batch)
                batch = []
            batch.append(s)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch:
            yield collate(batch)
