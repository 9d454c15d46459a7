"""`vda-infer INPUT [INPUT ...] --checkpoint CKPT ...`: depth for videos or frame folders, in bounded memory.

Each input streams through the runner; finished depth maps go to an on-disk spool, from which the
requested outputs are built (see writers.py). Bad inputs give one line `vda-infer: error: <file>: <cause>`
and the other inputs still run; the exit status is 1 if any input failed, 2 for a bad command line,
checkpoint or output directory.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

PROG = "vda-infer"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Video Depth Anything inference on videos or frame folders.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video file or folder of PNG/JPEG frames")
    p.add_argument("--checkpoint", required=True, help="published .pth, safetensors or our checkpoint")
    p.add_argument("--encoder", default="auto", choices=["auto", "vits", "vitb", "vitl", "vitt"])
    p.add_argument("--input-size", type=int, default=518, help="short side seen by the network (multiple of 14)")
    p.add_argument("--max-res", type=int, default=1280, help="cap on the frames' long side (<= 0: none)")
    p.add_argument("--max-len", type=int, default=-1, help="at most N frames per input (-1: all)")
    p.add_argument("--target-fps", type=float, default=-1, help="keep every round(fps/F)-th frame (-1: all)")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default=None,
                   help="default: fp16 autocast on CUDA (as published), fp32 on the CPU")
    p.add_argument("--mode", choices=["offline", "streaming"], default="offline")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--output-dir", default="outputs")
    p.add_argument("--save", default="npz", help="comma list of npz,png16,exr,vis,ply")
    p.add_argument("--focal-length-x", type=float, default=470.4, help="ply: pinhole fx in pixels")
    p.add_argument("--focal-length-y", type=float, default=470.4, help="ply: pinhole fy in pixels")
    return p


def fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


HINTS = ("looks like", "suggest", "no known encoder")


def one_line(exc: Exception) -> str:
    """Checkpoint errors list keys over many lines: keep the first line and the diagnosis lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    hints = [line for line in lines[1:] if any(h in line for h in HINTS)]
    return lines[0] + (f" ({'; '.join(hints)})" if hints else "")


def check_output_dir(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".vda-write-test"):
            pass
    except OSError as e:
        return f"{path}: output directory is not writable ({e.strerror or e})"
    return None


def peak_host_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def output_name(path: Path, taken: set[str]) -> str:
    name = path.name if path.is_dir() else path.stem
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def run_one(runner, source, out_dir: Path, name: str, formats, metric: bool, focal) -> int:
    from tqdm import tqdm

    from .writers import DepthSpool, write_outputs

    spool = DepthSpool(out_dir / f".{name}.depths.f32.partial")
    try:
        with tqdm(total=source.expected_frames(), unit="frame", desc=name, dynamic_ncols=True) as bar:
            for depth in runner.run(iter(source)):
                spool.append(depth)
                bar.update(1)
        spool.close()
        write_outputs(spool, out_dir, name, formats, metric=metric, source=source, fps=source.fps, focal=focal)
        return spool.count
    finally:
        spool.remove()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .writers import FORMATS

    formats = [f.strip() for f in args.save.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        parser.error(f"--save takes a comma list of {','.join(FORMATS)}; got {args.save!r}")

    out_dir = Path(args.output_dir)
    problem = check_output_dir(out_dir)
    if problem:
        fail(problem)
        return 2

    import torch

    from .. import CheckpointError, load_model
    from .frame_sources import InputError, open_source
    from .offline import OfflineRunner
    from .runtime import resolve_device
    from .streaming import StreamingRunner

    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device is available")
        return 2
    precision = args.precision or ("fp16" if device.type == "cuda" else "fp32")
    try:
        model = load_model(args.checkpoint, encoder=None if args.encoder == "auto" else args.encoder, expect="video")
    except CheckpointError as e:
        fail(one_line(e))
        return 2
    if args.encoder != "auto" and model.config.encoder != args.encoder:  # our files carry their config
        fail(f"{args.checkpoint}: holds a {model.config.encoder} model, not --encoder {args.encoder}")
        return 2
    metric = bool(model.config.metric)
    if "ply" in formats and not metric:
        fail(f"{args.checkpoint}: --save ply needs a metric checkpoint (this one predicts relative disparity)")
        return 2
    model = model.to(device).eval()
    Runner = OfflineRunner if args.mode == "offline" else StreamingRunner
    runner = Runner(model, input_size=args.input_size, device=device, precision=precision)

    start, frames, failures, taken = time.perf_counter(), 0, 0, set()
    for item in args.inputs:
        path = Path(item)
        try:
            source = open_source(path, max_res=args.max_res, max_len=args.max_len, target_fps=args.target_fps)
            name = output_name(path, taken)
            frames += run_one(runner, source, out_dir, name, formats, metric, (args.focal_length_x,
                                                                               args.focal_length_y))
        except InputError as e:
            fail(str(e))
            failures += 1
        except OSError as e:  # e.g. the disk filled up while writing
            fail(f"{e.filename or out_dir}: cannot write output ({e.strerror or e})")
            failures += 1
    elapsed = time.perf_counter() - start
    gpu = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
    print(
        f"{PROG}: {len(args.inputs) - failures}/{len(args.inputs)} inputs, {frames} frames in {elapsed:.1f} s "
        f"({frames / max(elapsed, 1e-9):.2f} frames/s), peak host memory {peak_host_mb():.0f} MiB{gpu} -> {out_dir}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
