"""Sequences -> clip jobs -> shards (parallel, resumable). The engine behind `vda-shard`.

Shard i holds jobs [i*n, (i+1)*n) of the deterministic job list, so a rerun recomputes the same plan and skips
every shard whose index says it is complete with the same inputs and options (`spec_hash`).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from ..io import die_with_parent, read_depth, read_frames, read_mask, remove_stale_temporaries
from ..trust import ReadError, display
from .depth_stats import PLAUSIBLE_METRIC_DEPTH, DepthStats, implausible_metric_depth, valid_values
from .format import ClipRecord, encode_record, sample_key
from .manifests import SequenceSpec, clip_starts
from .shards import ShardWriter, read_index, shard_is_complete


@dataclass
class ShardOptions:
    clip_len: int = 32
    stride: int = 32
    frame_step: int = 1
    short_side: int = 0                 # 0: keep the stored size
    sample_type: str = "clip"           # "image": every frame becomes its own T = 1 sample
    frame_format: str = "png"
    depth_encoding: str = "png16"
    depth_scale: float | None = None    # png16 scale; None: per clip, the finest that fits
    jpeg_quality: int = 95
    max_samples_per_shard: int = 64
    max_shard_mb: float = 2048.0

    def encode_kw(self) -> dict:
        return dict(frame_format=self.frame_format, depth_encoding=self.depth_encoding,
                    depth_scale=self.depth_scale, jpeg_quality=self.jpeg_quality)


def plan_jobs(seqs: list[SequenceSpec], opt: ShardOptions) -> list[tuple[int, list[int]]]:
    """(sequence index, frame indices) of every sample, in a fixed order."""
    jobs = []
    for si, s in enumerate(seqs):
        n = len(s.frames)
        if opt.sample_type == "image":
            jobs.extend((si, [i]) for i in range(0, n, max(1, opt.frame_step)))
            continue
        for start in clip_starts(n, opt.clip_len, opt.stride, opt.frame_step):
            stop = n if opt.clip_len <= 0 else start + (opt.clip_len - 1) * opt.frame_step + 1
            jobs.append((si, list(range(start, stop, opt.frame_step))))
    return jobs


def resize_short_side(frames, depth, mask, K, short_side: int):
    """Resize so that min(H, W) == short_side: frames INTER_AREA (down) / INTER_CUBIC (up), depth and mask
    nearest (no blending across depth edges), K scaled with pixel centres at integer coordinates."""
    H, W = frames.shape[1:3]
    s = short_side / min(H, W)
    h, w = int(round(H * s)), int(round(W * s))
    if (h, w) == (H, W):
        return frames, depth, mask, K
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    frames = np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])
    if depth is not None:
        depth = np.stack([cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST) for d in depth])
    if mask is not None:
        mask = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in mask])
    if K is not None:
        sx, sy = w / W, h / H
        K = K.copy()
        K[..., 0, 0] *= sx
        K[..., 1, 1] *= sy
        K[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
        K[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return frames, depth, mask, K


def read_sequence_depth(seq: SequenceSpec, i: int) -> np.ndarray:
    """Depth of frame i in the sequence's units: its own reader, or the generic one with its factor."""
    if seq.reader is not None:
        return np.asarray(seq.reader(seq.depths[i], i), dtype=np.float32)
    return read_depth(seq.depths[i], seq.factor)


def _same_size(maps: list[np.ndarray], paths: list[str], ids: list[int], what: str, seq: SequenceSpec,
               size: tuple[int, int]) -> np.ndarray:
    """The per-frame maps stacked, after each one's size is checked against the frames' (one line naming the
    file and the frame that differs)."""
    for m, path, i in zip(maps, paths, ids):
        if m.shape != size:
            got = f"{m.shape[1]}x{m.shape[0]}" if m.ndim == 2 else f"shape {m.shape}"
            raise ReadError(f"{display(path)}: {what} is {got} but the frames are {size[1]}x{size[0]} "
                            f"({seq.frame_label(i)} of {display(seq.dataset)}/{display(seq.name)})")
    return np.stack(maps)


def load_job(seq: SequenceSpec, ids: list[int], opt: ShardOptions) -> ClipRecord:
    frames = np.stack(list(read_frames(seq.frames[i] for i in ids)))
    H, W = frames.shape[1:3]
    depth = mask = None
    if seq.depths is not None:
        depth = _same_size([read_sequence_depth(seq, i) for i in ids], [seq.depths[i] for i in ids], ids, "depth",
                           seq, (H, W))
    if seq.masks is not None:
        mask = _same_size([read_mask(seq.masks[i]) for i in ids], [seq.masks[i] for i in ids], ids, "mask", seq,
                          (H, W))
    K = None if seq.K is None else (seq.K if seq.K.ndim == 2 else seq.K[ids])
    if opt.short_side:
        frames, depth, mask, K = resize_short_side(frames, depth, mask, K, opt.short_side)
    extra = {}
    if K is not None and K.ndim == 3:  # one K per clip in the format; keep per-frame Ks only if they differ
        if not np.allclose(K, K[0]):
            extra["K_per_frame"] = K.tolist()
        K = K[0]
    poses = None if seq.poses is None else seq.poses[ids]
    return ClipRecord(frames, seq.dataset, seq.name, ids, depth=depth, mask=mask, K=K, poses=poses,
                      depth_kind=seq.depth_kind if depth is not None else "none", depth_units=seq.units,
                      sample_type=opt.sample_type, extra=extra, key=sample_key(seq.dataset, seq.name, ids[0]))


def _spec_hash(seqs, jobs, opt) -> str:
    desc = [(seqs[si].dataset, seqs[si].name, [seqs[si].frames[i] for i in ids],
             None if seqs[si].depths is None else [seqs[si].depths[i] for i in ids], seqs[si].factor,
             repr(seqs[si].reader))
            for si, ids in jobs]
    return hashlib.sha1(json.dumps([desc, opt.__dict__], sort_keys=True).encode()).hexdigest()[:16]


def _write_one(path: str, seqs: dict[int, SequenceSpec], jobs, opt: ShardOptions, spec: str) -> int:
    with ShardWriter(path, spec_hash=spec, **opt.encode_kw()) as w:
        for si, ids in jobs:
            w.write(load_job(seqs[si], ids, opt))
    return len(jobs)


def _write_in_workers(todo: list, workers: int, bar) -> None:
    """`_write_one` of each job in `workers` processes; the first error is re-raised once every running writer
    has ended, and the shards not started yet are cancelled (a full disk stops the run, not one shard of it)."""
    # Workers die with this process, even on SIGKILL (io/processes.py): none is left writing, re-parented.
    pool = ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        for fut in as_completed([pool.submit(_write_one, *args) for args in todo]):
            fut.result()  # re-raises a worker's error (finished shards stay complete: a rerun resumes)
            bar.update()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def samples_per_shard(seqs, jobs, opt: ShardOptions) -> int:
    """max_samples_per_shard, lowered so that a shard stays under max_shard_mb (size of the first sample)."""
    if not jobs:
        return 1
    first = encode_record(load_job(seqs[jobs[0][0]], jobs[0][1], opt), **opt.encode_kw())
    size = sum(len(v) + 1024 for v in first.values())  # + tar headers/padding
    return max(1, min(opt.max_samples_per_shard, int(opt.max_shard_mb * 2**20 // size)))


def check_depth_units(seqs: list[SequenceSpec], unit_hint: str | None = "--factor", frames_per_sequence: int = 3,
                      plausible: tuple[float, float] = PLAUSIBLE_METRIC_DEPTH, progress: bool = False,
                      plausible_for: str = "metric depth") -> None:
    """Refuse (ReadError, one line) the first sequence whose sampled depth has no valid pixel at all, or, for
    metric depth, whose sampled median lies outside `plausible` (the range of `plausible_for`: "metric depth",
    or a dataset whose converter states its own range).

    Reads `frames_per_sequence` evenly spaced depth files of every sequence (through the sequence's own reader),
    before anything is written. `unit_hint` names the flag that sets the units (None: the layout fixes them).
    The line names the first sampled depth file, the sequence and the sampled frames.
    """
    for seq in tqdm(seqs, desc="depth units", unit="seq", disable=not progress or len(seqs) < 20):
        if seq.depths is None or seq.depth_kind == "none":
            continue
        n = len(seq.depths)
        picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, frames_per_sequence))})
        values = np.concatenate([valid_values(read_sequence_depth(seq, i)) for i in picks])
        where = (f"{display(seq.depths[picks[0]])} ({display(seq.dataset)}/{display(seq.name)}, sampled frames "
                 f"{', '.join(str(i) for i in picks)})")
        change = f"change {unit_hint} or " if unit_hint else ""
        if values.size == 0:
            raise ReadError(f"{where}: no valid depth pixel (all 0, negative, non-finite or the dataset's invalid "
                            f"value: wrong units?); {change}pass --allow-depth-range if this is right")
        if seq.depth_kind != "metric_depth":
            continue
        why = implausible_metric_depth(values, seq.units, plausible, plausible_for)
        if why:
            raise ReadError(f"{where}: {why}; {change}pass --allow-depth-range if this is right")


def sequence_report(paths: list[str]) -> dict[str, DepthStats]:
    """Per-sequence depth statistics of complete shards, merged from their indexes."""
    out: dict[str, DepthStats] = {}
    for path in paths:
        for name, d in ((read_index(path) or {}).get("depth_stats") or {}).items():
            s = DepthStats.from_dict(d)
            if name in out:
                out[name].merge(s)
            else:
                out[name] = s
    return out


def dataset_report(per_sequence: dict[str, DepthStats]) -> dict[str, dict]:
    """Per-dataset summaries (min, median, max, valid fraction) of per-sequence statistics."""
    merged: dict[str, DepthStats] = {}
    for name, s in per_sequence.items():
        ds = name.split("/", 1)[0]
        merged.setdefault(ds, DepthStats(s.kind, s.units)).merge(s)
    return {ds: s.summary() for ds, s in merged.items()}


def write_shards(seqs: list[SequenceSpec], out_dir: str, prefix: str, opt: ShardOptions, workers: int = 1,
                 progress: bool = True, check_units: bool = True, unit_hint: str | None = "--factor",
                 report: Callable[[str], None] | None = None,
                 plausible: tuple[float, float] = PLAUSIBLE_METRIC_DEPTH, plausible_for: str = "metric depth") -> dict:
    """Write `<out_dir>/<prefix>-NNNNNN.tar` (+ .index.json); returns a summary (shards written/skipped).

    Before writing, metric depth with a median outside `plausible`, or depth without a valid pixel, is refused
    (`check_depth_units`) unless check_units is False; after writing, `report` (default: stderr) gets one line
    per sequence with its depth range and valid fraction, from the shard indexes (so a resumed run reports what
    all shards hold). A shard that cannot be written (a full disk) is one OSError naming it; no staging file of
    this run is left behind, and the shards finished before stay complete (a rerun resumes).
    """
    if check_units:
        check_depth_units(seqs, unit_hint, plausible=plausible, progress=progress, plausible_for=plausible_for)
    jobs = plan_jobs(seqs, opt)
    if not jobs:
        raise ValueError(f"no samples: {len(seqs)} sequences are all shorter than a clip "
                         f"({opt.clip_len} frames at step {opt.frame_step})")
    n = samples_per_shard(seqs, jobs, opt)
    groups = [jobs[i:i + n] for i in range(0, len(jobs), n)]
    os.makedirs(out_dir, exist_ok=True)
    # What a killed run of this command left: staging files of these shards and indexes (not a live writer's).
    remove_stale_temporaries(out_dir, f"{prefix}-*")
    todo, paths, skipped = [], [], 0
    for g, group in enumerate(groups):
        path = os.path.join(out_dir, f"{prefix}-{g:06d}.tar")
        paths.append(path)
        spec = _spec_hash(seqs, group, opt)
        if shard_is_complete(path, spec):
            skipped += 1
        else:
            todo.append((path, {si: seqs[si] for si, _ in group}, group, opt, spec))
    bar = tqdm(total=len(todo), desc=f"vda-shard {prefix}", unit="shard", disable=not progress)
    try:
        if workers <= 1:
            for args in todo:
                _write_one(*args)
                bar.update()
        else:
            _write_in_workers(todo, workers, bar)
    except Exception:
        # every writer has ended (its own abort removed its staging file unless the disk refused even that):
        # what is still there of this run's shards is stale; finished shards stay complete, a rerun resumes
        remove_stale_temporaries(out_dir, f"{prefix}-*")
        raise
    finally:
        bar.close()
    per_sequence = sequence_report(paths)
    report = report or (lambda line: print(line, file=sys.stderr))
    for name in sorted(per_sequence):
        report(per_sequence[name].describe(name))
    return {"shards": paths, "samples": len(jobs), "samples_per_shard": n, "written": len(todo),
            "skipped_complete": skipped, "sequences": len(seqs), "depth": dataset_report(per_sequence)}
