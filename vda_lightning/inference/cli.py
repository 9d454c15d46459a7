"""`vda infer INPUT [INPUT ...] --checkpoint CKPT ...` (alias `vda-infer`): depth for videos or frame folders,
in bounded memory; `--backend onnxruntime --onnx DIR` runs the same runners on exported graphs (docs/deploy.md).

Each input streams through the runner; finished depth maps go to an on-disk spool, from which the
requested outputs are built (see writers.py). Bad inputs give one line `vda infer: error: <file>: <cause>`
and the other inputs still run; the exit status is 1 if any input failed, 2 for a bad command line,
checkpoint or output directory (cli/errors.py).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from ..cli import errors
from ..cli.options import (
    HelpFormatter,
    add_checkpoint,
    add_device,
    add_encoder,
    add_input_size,
    add_precision,
    encoder_or_none,
    resolve_device,
    resolve_precision,
)

PROG = "vda-infer"
SAVE_FORMATS = "npz,png16,exr,vis,ply"  # writers.FORMATS (checked against it in the tests)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Video Depth Anything inference on videos or frame folders.",
                                formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video file or folder of PNG/JPEG frames")
    add_checkpoint(p, required=False, help="model weights: published .pth, safetensors, or a vda fit checkpoint "
                   "(required with --backend pytorch; with onnxruntime: the export must come from it)")
    add_encoder(p)
    add_input_size(p)
    p.add_argument("--max-res", type=int, default=1280, help="cap on the frames' long side (<= 0: none)")
    p.add_argument("--max-len", type=int, default=-1, help="at most N frames per input (-1: all)")
    p.add_argument("--target-fps", type=float, default=-1, help="keep every round(fps/F)-th frame (-1: all)")
    add_precision(p)
    p.add_argument("--mode", choices=["offline", "streaming"], default="offline",
                   help="offline: the published key-frame windows; streaming: online, one frame in, one out")
    add_device(p)
    p.add_argument("--backend", choices=["pytorch", "onnxruntime"], default="pytorch",
                   help="onnxruntime: the graphs of vda export --format onnx (docs/deploy.md)")
    p.add_argument("--onnx", metavar="DIR", default=None,
                   help="onnxruntime: the export folder (offline: encoder.onnx + head.onnx; streaming: "
                        "streaming.onnx)")
    p.add_argument("--output-dir", default="outputs", help="where the outputs are written")
    p.add_argument("--save", default="npz", help=f"comma list of {SAVE_FORMATS}")
    p.add_argument("--focal-length-x", type=float, default=470.4, help="ply: pinhole fx in pixels")
    p.add_argument("--focal-length-y", type=float, default=470.4, help="ply: pinhole fy in pixels")
    return p


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


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    from .writers import FORMATS

    formats = [f.strip() for f in args.save.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        parser.error(f"--save takes a comma list of {','.join(FORMATS)}; got {args.save!r}")
    if args.backend == "pytorch" and args.checkpoint is None:
        parser.error("the following arguments are required: --checkpoint (or --backend onnxruntime --onnx DIR)")
    if args.backend == "onnxruntime" and args.onnx is None:
        parser.error("--backend onnxruntime needs --onnx DIR (an export of vda export --format onnx)")

    out_dir = Path(args.output_dir)
    problem = check_output_dir(out_dir)
    if problem:
        return errors.fail(prog, problem)
    from .. import CheckpointError
    from ..deploy.ort_backend import OnnxBackendError

    return errors.run_command(prog, lambda: _infer(args, formats, out_dir, prog),
                              known=(CheckpointError, OnnxBackendError))


def _infer(args, formats: list[str], out_dir: Path, prog: str) -> int:
    import torch

    from .. import load_model
    from .frame_sources import InputError, open_source
    from .offline import OfflineRunner
    from .streaming import StreamingRunner

    if args.backend == "onnxruntime":  # the same runners on the exported graphs; host tensors for the runner
        from ..deploy.ort_backend import open_backend

        model = open_backend(args.onnx, args.mode, args.device, checkpoint=args.checkpoint,
                             encoder=encoder_or_none(args.encoder), precision=args.precision)
        device, precision = resolve_device("cpu"), "fp32"
    else:
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        model = load_model(args.checkpoint, encoder=encoder_or_none(args.encoder), expect="video")
    source = args.checkpoint or args.onnx
    if args.encoder != "auto" and model.config.encoder != args.encoder:  # our files carry their config
        raise errors.CommandError(f"{args.checkpoint}: holds a {model.config.encoder} model, "
                                  f"not --encoder {args.encoder}")
    metric = bool(model.config.metric)
    if "ply" in formats and not metric:
        raise errors.CommandError(f"{source}: --save ply needs a metric checkpoint "
                                  "(this one predicts relative disparity)")
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
            errors.report(prog, e)
            failures += 1
        except OSError as e:  # e.g. the disk filled up while writing
            errors.report(prog, f"{e.filename or out_dir}: cannot write output ({e.strerror or e})")
            failures += 1
    elapsed = time.perf_counter() - start
    gpu = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
    print(
        f"{prog}: {len(args.inputs) - failures}/{len(args.inputs)} inputs, {frames} frames in {elapsed:.1f} s "
        f"({frames / max(elapsed, 1e-9):.2f} frames/s), peak host memory {peak_host_mb():.0f} MiB{gpu} -> {out_dir}"
    )
    return errors.EXIT_SOME_FAILED if failures else errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
