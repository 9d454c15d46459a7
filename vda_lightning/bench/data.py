"""`vda bench data` (alias `vda-bench data`): decode + augmentation throughput of training clips, per worker
(one process, one thread), for either place of the augmentation (`--augment-on cpu,device`).

Measures, per clip of the shards: tar read, member decode (PNG/JPEG frames, 16-bit depth), target conversion and
(`cpu`) the clip-consistent augmentation to crop x crop — exactly the work a dataloader worker does for one
sample. With `device` the worker only decodes and draws the parameters; the augmentation's own rate on --device
(kornia, `data/device_augment.py`, the stored clip copied there first, as after the loader) is reported beside it.
Without --shards it first writes synthetic clips of frames x size x size (rendered small and upscaled; such frames
compress better than camera footage, so MB/s on real data is higher per clip/s), or with `--video` clips of real
footage: consecutive frames, short side resized to --size and centre-cropped square, with a depth-like map made
from each frame (its grey level blurred, 1..80 m: piecewise smooth like real depth, so codecs compress it alike).

`--depth-encoding png16,f16lz4` and `--decode-on worker,device` compare the worker's cost per clip: with
`--augment-on device` and JPEG frames, `device` leaves the frames as bytes (data/device_decode.py decodes them
with the augmentation on --device), `worker` decodes them in the worker as before. The figure to read is clips per
CPU-second of the worker (wall time on a shared machine also counts other processes).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ..cli import errors
from ..cli.errors import CommandError
from ..cli.options import HelpFormatter, comma_list
from ..data.format import DEPTH_ENCODINGS, FRAME_FORMATS, ClipRecord
from ..io import write_json_atomic

PROG = "vda-bench data"
# torch, OpenCV and the training data path are imported where they work: `vda bench data --help` needs none.


def _make_bench_shard(path: str, n_clips: int, frames: int, size: int, frame_format: str, depth_encoding: str):
    import cv2

    from ..data.shards import ShardWriter, shard_is_complete
    from ..scenes import render_clip

    spec = f"bench-{n_clips}-{frames}-{size}-{frame_format}-{depth_encoding}"
    if shard_is_complete(path, spec):
        return
    small = max(28, size // 4)
    with ShardWriter(path, spec_hash=spec, frame_format=frame_format, depth_encoding=depth_encoding) as w:
        for i in range(n_clips):
            c = render_clip([12345, i], frames, small, small)
            up = lambda a, interp: np.stack([cv2.resize(x, (size, size), interpolation=interp) for x in a])  # noqa: E731
            w.write(ClipRecord(up(c["frames"], cv2.INTER_CUBIC), "bench", f"clip{i}", list(range(frames)),
                               depth=up(c["depth"], cv2.INTER_NEAREST), mask=up(c["mask"].astype(np.uint8),
                                                                               cv2.INTER_NEAREST) > 0,
                               K=c["K"] * [[size / small], [size / small], [1]], poses=c["poses"]))


def _square(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    s = size / min(h, w)
    out = cv2.resize(frame, (max(size, round(w * s)), max(size, round(h * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y0, x0 = (out.shape[0] - size) // 2, (out.shape[1] - size) // 2
    return np.ascontiguousarray(out[y0:y0 + size, x0:x0 + size])


def footage_clips(videos: list[str], n_clips: int, frames: int, size: int):
    """`n_clips` clips of consecutive frames of the videos (in turn, from the start), size x size, with the
    depth-like map of the module docstring."""
    import cv2

    from ..inference.frame_sources import open_source

    made = 0
    while made < n_clips:
        for video in videos:
            clip = []
            for f in open_source(video, max_res=4096, max_len=frames * n_clips):
                clip.append(_square(f, size))
                if len(clip) == frames:
                    stack = np.stack(clip)
                    grey = stack.mean(-1, dtype=np.float32) / 255
                    depth = np.stack([1 + 79 * cv2.GaussianBlur(g, (0, 0), 3) for g in grey]).astype(np.float32)
                    yield os.path.basename(video), stack, depth
                    made, clip = made + 1, []
                    if made == n_clips:
                        return
        if made == 0:
            raise CommandError(f"{', '.join(videos)}: no clip of {frames} frames in these videos")


def _make_video_shard(path: str, videos: list[str], n_clips: int, frames: int, size: int, frame_format: str,
                      depth_encoding: str):
    from ..data.shards import ShardWriter, shard_is_complete

    spec = f"video-{'-'.join(map(os.path.basename, videos))}-{n_clips}-{frames}-{size}-{frame_format}-{depth_encoding}"
    if shard_is_complete(path, spec):
        return
    with ShardWriter(path, spec_hash=spec, frame_format=frame_format, depth_encoding=depth_encoding) as w:
        for i, (name, stack, depth) in enumerate(footage_clips(videos, n_clips, frames, size)):
            w.write(ClipRecord(stack, "footage", f"{name}-{i}", list(range(frames)), depth=depth))


def device_rate(samples: list[dict], crop: int, device) -> dict:
    """The device's part of each stored clip (JPEG frames left as bytes decoded there, then the augmentation; one
    clip per call, after a warm-up call): clips/s."""
    import torch

    from ..data.device_augment import DeviceAugmentation
    from ..data.device_decode import decode_deferred
    from ..data.transforms import collate
    from .workloads import sync

    aug = DeviceAugmentation((crop, crop))
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in collate([s]).items()} for s in samples]
    aug(decode_deferred(batches[0], device))
    sync(device)
    t0 = time.perf_counter()
    for b in batches:
        aug(decode_deferred(b, device))
    sync(device)
    secs = time.perf_counter() - t0
    return {"device": str(device), "device_clips_per_s": len(batches) / secs, "device_seconds": secs}


def measure(urls: list[str], clip_len: int, crop: int, repeat: int, seed: int = 0, augment_on: str = "cpu",
            device=None, decode_on: str = "device") -> dict:
    """Per-worker figures of the training sample path; `augment_on="device"` adds the augmentation's rate on
    `device` (default: CUDA when there is one), JPEG frames decoded there unless `decode_on="worker"`."""
    import torch

    from ..data.datasets import train_sample
    from ..data.format import SampleError
    from ..data.streams import SkipCounters, iter_tar_samples
    from ..data.transforms import AugmentConfig

    aug = AugmentConfig()
    counters = SkipCounters(1, "bench")
    rng = np.random.default_rng(seed)
    read_s = work_s = 0.0
    clips = nbytes = 0
    kept = []  # device path: the stored clips, for the device augmentation's rate
    cpu0 = time.process_time()  # CPU seconds too: on a shared machine wall time also counts other processes
    for _ in range(repeat):
        for url in urls:
            t0 = time.perf_counter()
            raws = list(iter_tar_samples(url, counters))
            read_s += time.perf_counter() - t0
            for raw in raws:
                t0 = time.perf_counter()
                try:
                    s = train_sample(raw, clip_len, rng, aug, (crop, crop), 1e-3, 0.0, need_target=True,
                                     on_device=augment_on == "device",
                                     defer_jpeg=augment_on == "device" and decode_on == "device")
                    if augment_on == "device" and len(kept) < 8:
                        kept.append(s)
                except SampleError as e:  # skipped and counted, as the training stream does
                    counters.skip(e.reason, f"{url} {raw.get('__key__')}", e.detail)
                    continue
                work_s += time.perf_counter() - t0
                clips += 1
                nbytes += sum(len(v) for k, v in raw.items() if not k.startswith("__"))
    skipped = counters.as_dict()
    if clips == 0:
        reasons = ", ".join(f"{n} {r}" for r, n in skipped.items() if n and r not in ("ok", "skipped"))
        hint = f" (clips shorter than --frames {clip_len}: pass a smaller --frames)" if skipped.get("too_short") \
            else ""
        raise CommandError(f"{', '.join(urls)}: no clip could be measured, all were skipped ({reasons or 'none read'})"
                           f"{hint}")
    total = read_s + work_s
    cpu = time.process_time() - cpu0
    extra = {}
    if augment_on == "device":
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        extra = device_rate(kept, crop, device)
    return {**extra, "augment_on": augment_on, "decode_on": decode_on if augment_on == "device" else "worker",
            "cpu_seconds": cpu, "clips_per_cpu_s": clips / cpu, "clips": clips, "clip_len": clip_len, "crop": crop,
            "seconds": total, "read_seconds": read_s,
            "clips_per_s": clips / total, "frames_per_s": clips * clip_len / total,
            "MB_per_s": nbytes / 2**20 / total, "MB_per_clip": nbytes / 2**20 / max(1, clips),
            "skipped": skipped["skipped"]}


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--shards", default=None, help="shards to read (default: synthetic clips in --work-dir)")
    ap.add_argument("--work-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "vda-lightning", "bench"),
                    help="where synthetic clips are written (and reused)")
    ap.add_argument("--clips", type=int, default=4, help="synthetic clips to write")
    ap.add_argument("--frames", type=int, default=32, help="frames per clip (also the training clip length)")
    ap.add_argument("--size", type=int, default=518, help="stored frame size of synthetic clips")
    ap.add_argument("--crop", type=int, default=518, help="augmentation output size (multiple of 14)")
    ap.add_argument("--frame-format", choices=FRAME_FORMATS, nargs="+", default=list(FRAME_FORMATS),
                    help="frame formats of the synthetic clips")
    ap.add_argument("--depth-encoding", type=comma_list(DEPTH_ENCODINGS, "--depth-encoding"), default=["png16"],
                    help=f"comma list of depth encodings of the written clips ({', '.join(DEPTH_ENCODINGS)})")
    ap.add_argument("--video", type=lambda v: [x for x in v.split(",") if x], default=None,
                    help="comma list of videos: clips of real footage instead of synthetic ones")
    ap.add_argument("--decode-on", type=comma_list(("worker", "device"), "--decode-on"), default=["device"],
                    help="--augment-on device with JPEG frames: where they are decoded")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the shards")
    ap.add_argument("--augment-on", type=comma_list(("cpu", "device"), "--augment-on"), default=["cpu"],
                    help="where the augmentation runs: cpu (in the worker), device (kornia after the copy)")
    ap.add_argument("--device", default=None, help="the device path's accelerator (default: cuda if available)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a dataloader worker uses 1)")
    ap.add_argument("--json", default="bench_data.json", help="where to write the figures")
    return ap


def run_data_bench(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = build_parser(prog).parse_args(argv)
    return errors.run_command(prog, lambda: _bench(a), known=(ValueError,))


def _bench(a: argparse.Namespace) -> int:
    import torch

    from ..data.shards import expand_shards

    torch.set_num_threads(a.threads)
    results = []
    if a.shards:
        runs = [("given", expand_shards(a.shards, "--shards"))]
    else:
        runs = []
        for fmt in a.frame_format:
            for enc in a.depth_encoding:
                kind = "video" if a.video else "bench"
                path = os.path.join(a.work_dir, f"{kind}-{a.frames}x{a.size}-{fmt}-{enc}.tar")
                if a.video:
                    _make_video_shard(path, a.video, a.clips, a.frames, a.size, fmt, enc)
                else:
                    _make_bench_shard(path, a.clips, a.frames, a.size, fmt, enc)
                runs.append((f"{fmt}+{enc}", [path]))
    plan = [(run, on, place) for run in runs for on in a.augment_on
            for place in (a.decode_on if on == "device" and run[0].startswith("jpg") else ["worker"])]
    for (name, urls), on, place in plan:
        r = measure(urls, a.frames, a.crop, a.repeat, augment_on=on, device=a.device, decode_on=place)
        r.update(name=name, threads=a.threads)
        results.append(r)
        dev = (f"; {'decode + ' if r['decode_on'] == 'device' else ''}augmentation on {r['device']}: "
               f"{r['device_clips_per_s']:.2f} clips/s" if on == "device" else "")
        print(f"data [{name}, augment on {on}, decode in {r['decode_on']}] {r['clips']} clips of "
              f"{a.frames}x{a.crop}x{a.crop}: "
              f"{r['clips_per_s']:.3f} clips/s, {r['frames_per_s']:.1f} frames/s, {r['MB_per_s']:.1f} MB/s per worker "
              f"({r['MB_per_clip']:.1f} MB/clip, {a.threads} thread; {r['clips_per_cpu_s']:.3f} clips per CPU-s){dev}")
    out = {"benchmark": "data", "per_worker": results, "cpu_count": os.cpu_count(), "torch": torch.__version__,
           "load_avg_at_end": os.getloadavg(), "videos": a.video}
    write_json_atomic(a.json, out)
    print(f"wrote {a.json}")
    return 0
