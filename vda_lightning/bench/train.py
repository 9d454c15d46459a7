"""`vda bench train` (alias `vda-bench train`): training throughput per GPU (or on the CPU) for the paper's batch
composition, with and without gradient checkpointing, beside the data loader's clip rate, in one table that says
which of the two is the bottleneck.

The paper trains on batches of 16 video clips (32 frames) + 128 images (Video Depth Anything, sec. 4.1); on N GPUs
each one sees ceil(16/N) clips and ceil(128/N) images per step (`--gpus`, default 8 = one node). A step is what
Lightning runs: `RelativeDepthTask.training_step` inside the precision plugin's autocast (bench/workloads.py), backward,
the module's own AdamW step. The batch is procedural scenes (exact depth) already on the device, so the figure is
the compute alone. The loader's figure is `vda bench data`'s per-worker clip rate of shards decoded and augmented
exactly as a worker does, times the configured workers (capped at the CPU count): an estimate that assumes workers
scale, stated as such; image samples are not in it (they are single frames, ~1/32 of a clip's decoding).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings

from vda_lightning.memory import peak_rss_mib

from ..cli import errors
from ..cli.options import HelpFormatter, add_device, comma_list, encoder_names, positive_int, resolve_device
from ..io import write_json_atomic

PROG = "vda-bench train"
TRAIN_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
PAPER_CLIPS, PAPER_IMAGES = 16, 128


def per_gpu_share(gpus: int, clips: int = PAPER_CLIPS, images: int = PAPER_IMAGES) -> tuple[int, int]:
    """The per-GPU share of a global batch of `clips` + `images` on `gpus` GPUs (rounded up)."""
    return math.ceil(clips / gpus), math.ceil(images / gpus)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--encoder", default="vits", type=comma_list(encoder_names(), "--encoder"),
                   help=f"comma list of encoder sizes ({','.join(encoder_names())})")
    p.add_argument("--precision", default="bf16-mixed", type=comma_list(TRAIN_PRECISIONS, "--precision"),
                   help=f"comma list of Lightning precisions ({','.join(TRAIN_PRECISIONS)})")
    add_device(p)
    p.add_argument("--gpus", type=positive_int, default=8, help="GPUs sharing the global batch (per-GPU share)")
    p.add_argument("--clips", type=positive_int, default=None,
                   help=f"clips per step on this device (default: the per-GPU share of {PAPER_CLIPS})")
    p.add_argument("--images", type=int, default=None,
                   help=f"images per step on this device (default: the per-GPU share of {PAPER_IMAGES})")
    p.add_argument("--frames", type=positive_int, default=32, help="frames per clip")
    p.add_argument("--size", type=positive_int, default=518, help="crop size (multiple of 14)")
    p.add_argument("--checkpointing", default="off,on", type=comma_list(("off", "on"), "--checkpointing"),
                   help="gradient checkpointing settings to measure")
    p.add_argument("--levers", default="none", help="speed levers for the model (models/speed.py; e.g. compile)")
    p.add_argument("--steps", type=positive_int, default=3, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--workers", type=int, default=8, help="the configured loader workers (data.num_workers)")
    p.add_argument("--loader-size", type=positive_int, default=None, help="stored frame size of the loader's "
                   "synthetic clips (default: --size)")
    p.add_argument("--loader-clips", type=positive_int, default=2, help="synthetic clips the loader bench reads")
    p.add_argument("--no-loader", action="store_true", help="skip the loader measurement")
    p.add_argument("--threads", type=int, default=0, help="torch threads for the steps (0: torch's default)")
    p.add_argument("--json", default="train_bench.json", help="where to write the results")
    return p


def run_train_bench(argv, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(list(argv))
    from ..models.input_contract import PATCH_SIZE, is_multiple_size

    if not is_multiple_size([args.size]):
        parser.error(f"--size must be a positive multiple of {PATCH_SIZE} (the patch size); got {args.size}")
    from ..models.levers import parse_levers

    try:
        args.lever_list = parse_levers(args.levers.replace("+", ","))
    except ValueError as e:
        parser.error(str(e))
    return errors.run_command(prog, lambda: _bench(args, prog))


def measure_steps(module, batch: dict, precision: str, checkpointing: bool, steps: int, warmup: int) -> dict:
    """Seconds per optimizer step (training_step under the precision plugin, backward, AdamW step) and peaks."""
    import torch

    from .workloads import precision_context, sync

    device = module.device
    module.model.head.gradient_checkpointing = checkpointing
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]
    scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
    times, cpu_times, losses = [], [], []
    for i in range(warmup + steps):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(), precision_context(precision, device):
            warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer attached: logging is a no-op
            loss = module.training_step(batch, i)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        losses.append(float(loss.detach()))
    out = {"step_s": min(times), "step_s_all": times, "step_cpu_s": min(cpu_times), "loss_first": losses[0],
           "loss_last": losses[-1],
           "peak_host_mib": peak_rss_mib()}
    if device.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def loader_rate(args) -> dict:
    """`vda bench data`'s per-worker clip rate on synthetic shards of this frame count and crop, x workers."""
    from .data import _make_bench_shard, measure

    size = args.loader_size or args.size
    with tempfile.TemporaryDirectory(prefix="vda-bench-train-") as tmp:
        path = os.path.join(tmp, "loader.tar")
        _make_bench_shard(path, args.loader_clips, args.frames, size, "jpg", "png16")
        r = measure([path], args.frames, args.size, repeat=1)
    workers = max(1, min(args.workers, os.cpu_count() or 1))
    return {"per_worker_clips_per_s": r["clips_per_s"], "workers": args.workers, "workers_counted": workers,
            "loader_clips_per_s": r["clips_per_s"] * workers, "stored_size": size, "crop": args.size,
            "frames": args.frames, "MB_per_clip": r["MB_per_clip"]}


def _bench(args, prog: str) -> int:
    import torch

    from ..models.speed import apply_levers
    from ..training import RelativeDepthTask
    from .infer import machine_info, table_lines
    from .workloads import synthetic_train_batch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    share_clips, share_images = per_gpu_share(args.gpus)
    clips = args.clips or share_clips
    images = share_images if args.images is None else args.images
    print(f"{prog}: {clips} clips x {args.frames} frames + {images} images at {args.size}^2 per step on {device} "
          f"(paper share on {args.gpus} GPUs: {share_clips} + {share_images})", file=sys.stderr, flush=True)
    batch = synthetic_train_batch(clips, args.frames, images, args.size, device)
    loader = None if args.no_loader else loader_rate(args)
    rows = []
    for encoder in args.encoder:
        torch.manual_seed(0)
        module = RelativeDepthTask(encoder=encoder, total_steps=1000).to(device)
        apply_levers(module.model, args.lever_list)
        for precision in args.precision:
            for ckpt in args.checkpointing:
                print(f"{prog}: {encoder} {precision} checkpointing {ckpt} ...", file=sys.stderr, flush=True)
                r = measure_steps(module, batch, precision, ckpt == "on", args.steps, args.warmup)
                r.update(encoder=encoder, precision=precision, checkpointing=ckpt, device=str(device),
                         levers="+".join(args.lever_list) or "none", clips=clips, images=images,
                         frames=args.frames, size=args.size,
                         clips_per_s=clips / r["step_s"], images_per_s=images / r["step_s"])
                if loader:
                    r["loader_clips_per_s"] = loader["loader_clips_per_s"]
                    r["bottleneck"] = "loader" if loader["loader_clips_per_s"] < r["clips_per_s"] else "compute"
                rows.append(r)
        del module
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("\n".join(table_lines(rows, COLUMNS)))
    if loader:
        print(f"loader: {loader['per_worker_clips_per_s']:.3f} clips/s per worker x {loader['workers_counted']} "
              f"workers = {loader['loader_clips_per_s']:.3f} clips/s")
    report = {"benchmark": "train", "machine": machine_info(device), "per_gpu_share": [share_clips, share_images],
              "args": {k: v for k, v in vars(args).items()}, "loader": loader, "results": rows}
    write_json_atomic(args.json, report)
    print(f"{prog}: results written to {args.json}")
    return 0


COLUMNS = [("encoder", "{}"), ("precision", "{}"), ("checkpointing", "{}"), ("levers", "{}"), ("clips", "{}"),
           ("images", "{}"), ("frames", "{}"), ("size", "{}"), ("step_s", "{:.3f}"),
           ("step_cpu_s", "{:.3f}"), ("clips_per_s", "{:.3f}"),
           ("images_per_s", "{:.2f}"), ("peak_gpu_mib", "{:.0f}"), ("peak_host_mib", "{:.0f}"),
           ("loader_clips_per_s", "{:.3f}"), ("bottleneck", "{}")]
