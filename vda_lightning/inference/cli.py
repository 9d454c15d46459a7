"""`vda infer INPUT [INPUT ...] --checkpoint CKPT ...` (alias `vda-infer`): depth for videos or frame folders,
in bounded memory (CKPT may be a Hub name; without one, the published `vda-small`: docs/models.md);
`--backend onnxruntime --onnx DIR` runs the same runners on exported graphs (docs/deploy.md).
This module parses, checks and reports: the model and its runner come from `runners.py` (`open_model`,
`make_runner`, as for `infer_video`).

Frames come from the published `run.py` front end (frame_sources.py: decoder-side resize to the pixel of the
published decord path); each input streams through the runner; finished depth maps go to an on-disk spool, from
which the requested outputs are built (writers.py; names: layouts.py, our default layout or `--layout published`).
Bad inputs give one line `vda infer: error: <file>: <cause>` and the other inputs still run; the exit status is 1
if any input failed, 2 for a bad command line, checkpoint or output directory, 130 after Ctrl-C (cli/errors.py).
Inputs that share a name (`seqA/frames`, `seqB/frames`) are written under names that tell them apart
(`seqA_frames`, `seqB_frames`), and a note says so.

Relative or metric: `--metric` / `--relative` override a published file name and stand in for a file that says
nothing (no metadata, no published name: otherwise probed, `checkpoints.kind`); they do NOT override the
checkpoint's own metadata (`model.kind_source == "metadata"`: our config, safetensors metadata or sidecar): a
contradiction is one line naming the checkpoint and what its metadata says, exit 2 (`cli/options.load_model_kind`).
The kind used is printed with its reason. A metric model's windows are joined without the scale/shift alignment
(published `video_depth.py`, metric=True).

Point clouds (`--save ply`, metric models only) use `--intrinsics` or `--focal-length-x/-y` (`camera.py`); the
camera used is printed and written beside them.

Inputs, names and option values come from outside (docs/reliability.md). An input must be a folder or a regular
file (a FIFO, a device: one line, the others run); frames and video streams whose headers claim more than
VDA_MAX_PIXELS are refused before decoding (`frame_sources.py`, `io/video.py`). Outputs are named after the inputs,
so an input whose output name would not be valid UTF-8 or would hold a control character is refused: one line
`<input>: input name is not valid UTF-8 ...; rename it`, exit status 1, the other inputs still run, and nothing
is written for it (no native library ever gets a path either: `writers.py`). Option values are checked by their
argparse types (`cli/options.py`): `--focal-length-x/-y` finite and > 0, `--max-len` >= 1 or -1, `--target-fps`
finite; a bad one is argparse's usage line, exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from vda_lightning.memory import peak_rss_mib

from ..cli import errors
from ..cli.options import (
    HelpFormatter,
    add_checkpoint,
    add_device,
    add_encoder,
    add_input_size,
    add_model_kind,
    add_precision,
    frame_count,
    frame_rate,
    positive_float,
)
from ..trust.paths import display
from .layouts import DEFAULT_SAVE, FORMATS, LAYOUTS, parse_save

PROG = "vda-infer"
PRECISION_HELP = ("autocast dtype (default: fp16 on CUDA, as published; fp32 on the CPU). run.py autocasts on the "
                  "CPU too (bf16) unless --fp32; on the golden long-video case CPU bf16 is 1.9e-2 and fp16 1.1e-3 "
                  "off fp32 (mean relative; docs/inference.md)")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Video Depth Anything inference on videos or frame folders.",
                                formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video file or folder of PNG/JPEG frames")
    p.add_argument("--inputs", dest="inputs_list", metavar="LIST.txt",
                   help="a text file of inputs, one path a line (blank lines and # comments skipped), after INPUTs")
    add_checkpoint(p, required=False, help="model weights: published .pth, safetensors, a vda fit checkpoint, or a "
                   "Hub name (vda-small, hf://ORG/REPO[/FILE][@REV]; docs/models.md); default with --backend "
                   "pytorch: vda-small; with onnxruntime: the export must come from it")
    add_encoder(p)
    add_model_kind(p)
    add_input_size(p)
    p.add_argument("--max-res", type=int, default=1280,
                   help="cap on the frames' long side, sides rounded to even, resized in the decoder as run.py's "
                        "decord front end (<= 0: none)")
    p.add_argument("--max-len", type=frame_count, default=-1,
                   help="at most N >= 1 frames per input, counted after --target-fps (-1: all)")
    p.add_argument("--target-fps", type=frame_rate, default=-1, help="keep every round(fps/F)-th frame (-1: all)")
    add_precision(p, help=PRECISION_HELP)
    p.add_argument("--mode", choices=["offline", "streaming"], default="offline",
                   help="offline: the published key-frame windows; streaming: online, one frame in, one out")
    add_device(p)
    p.add_argument("--backend", choices=["pytorch", "onnxruntime"], default="pytorch",
                   help="onnxruntime: the graphs of vda export --format onnx (docs/deploy.md)")
    p.add_argument("--onnx", metavar="DIR", default=None,
                   help="onnxruntime: the export folder (offline: encoder.onnx + head.onnx; streaming: "
                        "streaming.onnx)")
    p.add_argument("--output-dir", default="outputs", help="where the outputs are written")
    p.add_argument("--save", default=None, metavar="FORMATS",
                   help=f"comma list of {','.join(FORMATS)} (default: {DEFAULT_SAVE['default']}; with --layout "
                        f"published: {DEFAULT_SAVE['published']}, what run.py always writes); vis: frames | depth "
                        "side by side (published layout: depth only), vis-depth: depth only, src: the frames read")
    p.add_argument("--layout", choices=LAYOUTS, default="default",
                   help="output names: ours (<name>_depths.npz, <name>_exr/000000.exr, ...) or run.py's "
                        "(<name>_depths.npz, <name>_depths_exr/frame_00000.exr, point0000.ply, ...)")
    p.add_argument("--grayscale", action="store_true", help="depth videos in grey levels, not the inferno palette")
    p.add_argument("--npz-compress", action=argparse.BooleanOptionalAction, default=True,
                   help="deflate the npz as the published np.savez_compressed (--no-npz-compress: faster, bigger)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--focal-length-x", type=positive_float, default=None,
                   help="ply: fx > 0 in pixels of the processed frames (default: 470.4, the published value)")
    p.add_argument("--focal-length-y", type=positive_float, default=None, help="ply: fy > 0 in pixels (default: fx)")
    p.add_argument("--intrinsics", default=None, metavar="FILE",
                   help="ply: the camera of the input at its own resolution: 3x3 K as text/.npy, or JSON "
                        "{fx, fy, cx, cy[, width, height]}; rescaled with --max-res")
    p.add_argument("--job-dir", default=None, metavar="DIR",
                   help="job folder: completion records (a re-run skips what is complete), progress, manifest.json "
                        "(default under a launcher: <output-dir>/.vda-job; docs/inference.md)")
    p.add_argument("--devices", type=int, default=None, metavar="N",
                   help="processes (one per GPU): outside a launcher, starts N under torchrun on this node; under "
                        "torchrun/srun, checked against their world size")
    p.add_argument("--num-nodes", type=int, default=1, metavar="M", help="nodes (with --devices, under srun/torchrun)")
    p.add_argument("--speed-levers", default="none", help="comma list of compile, channels_last, cuda_graphs "
                   "(models/speed.py; measured by vda bench infer --levers; off by default; pytorch backend)")
    return p


def check_output_dir(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".vda-write-test"):
            pass
    except OSError as e:
        return f"{display(path)}: output directory is not writable ({e.strerror or e})"
    return None


def peak_host_mb() -> float:
    return peak_rss_mib()


def output_names(paths: list[Path]) -> tuple[list[str], list[str]]:
    """One output name per input, unique: the file stem (folder name), preceded by as many parent folders as it
    takes to tell inputs apart (`seqA/frames`, `seqB/frames` -> `seqA_frames`, `seqB_frames`); the same input
    twice gets `_1`, `_2`. Returns (names, one note per group of inputs that had to be renamed)."""
    base = [p.name if p.is_dir() else p.stem for p in paths]
    absolute = [Path(os.path.abspath(p)) for p in paths]
    parts = [a.parts[1:-1] for a in absolute]  # parent folders, without the root
    names = list(base)
    for depth in range(1, max((len(q) for q in parts), default=0) + 1):
        owners: dict[str, set[Path]] = {}
        for n, a in zip(names, absolute):
            owners.setdefault(n, set()).add(a)
        clash = {n for n, inputs in owners.items() if len(inputs) > 1}
        if not clash:
            break
        names = [("_".join((*parts[i][-depth:], base[i])) if names[i] in clash else names[i])
                 for i in range(len(paths))]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):  # still equal: the same path given more than once
        if names.count(n) > 1:
            seen[n] = seen.get(n, -1) + 1
            names[i] = f"{n}_{seen[n]}" if seen[n] else n
    notes = []
    for b in dict.fromkeys(base):
        group = [i for i in range(len(paths)) if base[i] == b]
        if len(group) > 1:
            pairs = ", ".join(f"{display(paths[i])} -> {display(names[i])}" for i in group)
            notes.append(f"note: {len(group)} inputs are named '{display(b)}'; their outputs are named {pairs}")
    return names, notes


def check_output_name(path: Path, name: str) -> None:
    """`InputError` (one line naming the input) unless `name`, the output name made from the input's, is valid
    UTF-8 without control characters (`trust.check_name`): outputs are named after inputs, and such a name made
    OpenCV crash; refusing it (rather than writing under an escaped name) keeps every output findable by its
    input's name."""
    from ..trust import ReadError, check_name
    from .frame_sources import InputError

    try:
        check_name(name, "input")
    except ReadError:
        raise InputError(f"{display(path)}: input name is not valid UTF-8 or holds a control character, and the "
                         "outputs are named after it; rename it") from None


def run_one(runner, source, out_dir: Path, name: str, formats, metric: bool, camera, *, layout: str = "default",
            grayscale: bool = False, npz_compress: bool = True, progress: bool = True, prog: str = PROG,
            threads: bool | None = None, on_frame=None) -> int:
    """One input through the runner into its outputs; `threads` (default: `pipeline.overlap_pays`) runs decode,
    device work and finishing in three threads, else in this one (the same numbers either way)."""
    from .camera import metres_converter
    from .pipeline import overlap_pays, run_pipelined
    from .progress import BatchCounting, frame_bar
    from .writers import DepthSpool, write_outputs

    spool = DepthSpool(out_dir / f".{name}.depths.f32.partial")
    to_metres = metres_converter(runner.model.config, camera, source)  # None unless a canonical-camera model
    try:
        with frame_bar(source.expected_frames(), name, progress) as bar:
            runner = BatchCounting(runner, bar.update)  # the bar moves by whole windows: an honest ETA

            def sink(depth):  # threaded: in the finisher thread, so decoding and writing overlap the device's work
                spool.append(depth if to_metres is None else to_metres(depth))
                if on_frame is not None:
                    on_frame()

            threaded = overlap_pays(runner.device) if threads is None else threads
            if threaded:
                run_pipelined(runner, iter(source), sink)
            else:
                for depth in runner.run(iter(source)):
                    sink(depth)
        spool.close()
        if "ply" in formats:
            h, w = spool.shape
            used = camera.at(h, w, source.native_size)
            print(f"{prog}: {name}: point clouds with {used.describe(h, w)}", file=sys.stderr)
        write_outputs(spool, out_dir, name, formats, metric=metric, source=source, fps=source.fps, camera=camera,
                      layout=layout, grayscale=grayscale, npz_compress=npz_compress, progress=progress)
        return spool.count
    finally:
        spool.remove()


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.inputs_list:
        from ..trust import ReadError, read_path_list

        try:
            args.inputs = [*args.inputs, *read_path_list(args.inputs_list, "--inputs list")]
        except ReadError as e:
            return errors.fail(prog, str(e))
    if not args.inputs:
        parser.error("the following arguments are required: INPUT (or --inputs LIST.txt)")
    launched = _check_launch(parser, args)
    if launched is not None:
        from .infer_job import relaunch_with_torchrun

        return relaunch_with_torchrun(argv, args.devices, args.num_nodes, prog)
    try:
        formats = parse_save(args.save, args.layout)
    except ValueError as e:
        parser.error(str(e))
    if args.layout == "published" and "ply" in formats and len(args.inputs) > 1:
        parser.error("--layout published writes point%04d.ply straight into the output directory, as run.py does: "
                     "with several inputs they would overwrite each other (one input per --output-dir, or the "
                     "default layout)")
    if args.backend == "onnxruntime" and args.onnx is None:
        parser.error("--backend onnxruntime needs --onnx DIR (an export of vda export --format onnx)")
    from ..models.levers import parse_levers

    try:
        args.speed_levers = parse_levers(args.speed_levers)
    except ValueError as e:
        parser.error(f"--speed-levers: {e}")
    if args.speed_levers and args.backend != "pytorch":
        parser.error("--speed-levers act on the PyTorch model (--backend pytorch)")
    from .preflight import unusable_inputs

    unusable = unusable_inputs(args.inputs)
    if len(unusable) == len(args.inputs):  # nothing could run: say why before a model is named, fetched or loaded
        for why in unusable.values():
            errors.report(prog, why)
        return errors.EXIT_SOME_FAILED
    if args.backend == "pytorch" and args.checkpoint is None:  # the published Small model, by its Hub name
        from ..checkpoints.hub import DEFAULT_MODEL

        args.checkpoint = DEFAULT_MODEL
        print(f"{prog}: no --checkpoint: using {DEFAULT_MODEL} (docs/models.md)", file=sys.stderr)

    out_dir = Path(args.output_dir)
    problem = check_output_dir(out_dir)
    if problem:
        return errors.fail(prog, problem)
    from .. import CheckpointError
    from ..deploy.ort_backend import OnnxBackendError
    from .camera import CameraError

    return errors.run_command(prog, lambda: _infer(args, formats, out_dir, prog),
                              known=(CheckpointError, CameraError, OnnxBackendError))


def check_frame_shapes(args, items: list | None = None) -> None:
    """Every input's network input size, computed from its first frame before the model is loaded: a frame the
    network cannot take (models/input_contract.py, `checked_network_size`) is a CommandError (exit 2) naming the
    input and its size, and nothing is written. Unreadable inputs are left to the main loop, which reports them."""
    from ..models.input_contract import DEFAULT_CONTRACT, FrameShapeError
    from .frame_sources import InputError, open_source

    for item in args.inputs if items is None else items:
        try:
            frames = iter(open_source(Path(item), max_res=args.max_res, max_len=1, target_fps=args.target_fps))
            try:
                h, w = next(frames).shape[:2]
            finally:
                frames.close()
        except (InputError, StopIteration, OSError):
            continue
        try:
            DEFAULT_CONTRACT.checked_network_size(h, w, args.input_size, video=True, what=display(item))
        except FrameShapeError as e:
            raise errors.CommandError(str(e)) from None


def _check_launch(parser, args) -> bool | None:
    """True when `--devices N` asks for processes that no launcher started (then torchrun starts them); None to
    run here. Under torchrun or srun the launcher's world size must be what --devices x --num-nodes ask for."""
    if args.devices is None:
        if args.num_nodes != 1:
            parser.error("--num-nodes needs --devices (processes per node)")
        return None
    if args.devices < 1 or args.num_nodes < 1:
        parser.error("--devices and --num-nodes must be >= 1")
    from ..io import launch_rank_world

    _, world, _ = launch_rank_world()
    if world > 1 or "RANK" in os.environ or "SLURM_STEP_NUM_TASKS" in os.environ:
        wanted = args.devices * args.num_nodes
        if world != wanted and os.environ.get("VDA_SHARD_OVER_ARRAY") != "1":
            parser.error(f"--devices {args.devices} --num-nodes {args.num_nodes} ask for {wanted} processes; the "
                         f"launcher started {world}")
        return None
    return True if args.devices * args.num_nodes > 1 else None


def _open_job(args, paths: list[Path], names: list[str], formats: list[str], out_dir: Path, prog: str):
    """This process's `ShardedJob` (job.py): the launcher's rank and world, the job folder, the settings."""
    from ..devices import resolve_device
    from ..io import launch_rank_world
    from .infer_job import infer_settings, input_weights, model_sha256
    from .job import ShardedJob

    _, world, local_rank = launch_rank_world()
    if world > 1 and args.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():  # one GPU per process on a node
            args.device = f"cuda:{local_rank % torch.cuda.device_count()}"
    job_dir = args.job_dir or (out_dir / ".vda-job" if world > 1 else None)
    weights = input_weights(paths, args) if world > 1 else [1] * len(paths)
    settings = infer_settings(args, formats, resolve_device(args.device))
    return ShardedJob(prog=prog, command="vda infer", inputs=[str(p) for p in paths], names=names, weights=weights,
                      job_dir=job_dir, out_dir=out_dir, checkpoint_sha256=model_sha256(args) if job_dir else "",
                      settings=settings, progress=not args.no_progress)


def _infer(args, formats: list[str], out_dir: Path, prog: str) -> int:
    from .camera import camera_from_options
    from .preflight import check_before_loading

    camera = camera_from_options(args.focal_length_x, args.focal_length_y, args.intrinsics)
    check_before_loading(args, formats, camera)  # torch-free: what the files' records refuse, in under a second
    import torch

    from .infer_job import output_paths, remove_stale_staging
    from .runners import make_runner, open_model

    paths = [Path(item) for item in args.inputs]
    names, notes = output_names(paths)
    job = _open_job(args, paths, names, formats, out_dir, prog)
    check_frame_shapes(args, [args.inputs[i] for i in job.share])
    model, kind_line = open_model(args.backend, args.mode, checkpoint=args.checkpoint, onnx=args.onnx,
                                  encoder=args.encoder, metric=args.metric, device=args.device,
                                  precision=args.precision)
    source = args.checkpoint or args.onnx
    print(f"{prog}: {display(source)}: {kind_line}", file=sys.stderr)
    check_outputs_possible(model, camera, formats, source)
    runner = make_runner(model, args.mode, args.input_size, args.device, args.precision,
                         speed_levers=args.speed_levers)

    for note in notes:
        print(f"{prog}: {note}", file=sys.stderr)
    job.log_share()
    start, frames, failures, reused = time.perf_counter(), 0, 0, 0
    with job:
        for i in job.share:
            record = job.completed(i)
            if record is not None:  # its record names this checkpoint and these settings, its outputs exist
                job.reuse(i, record)
                reused += 1
                continue
            remove_stale_staging(out_dir, names[i], formats, args.layout)
            result = _infer_one(args, runner, paths[i], names[i], formats, camera, out_dir, prog,
                                progress=not args.no_progress and job.world == 1, on_frame=job.tick)
            if isinstance(result, str):
                failures += 1
                job.fail(i, result)
            else:
                frames += result
                job.complete(i, output_paths(names[i], formats, args.layout, result), result)
    elapsed = time.perf_counter() - start
    gpu = (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
           if runner.device.type == "cuda" else "")
    who = f"rank {job.rank}/{job.world}: " if job.world > 1 else ""
    done = f" ({reused} already complete)" if reused else ""
    print(
        f"{prog}: {who}{len(job.share) - failures}/{len(job.share)} inputs{done}, {frames} frames in {elapsed:.1f} s "
        f"({frames / max(elapsed, 1e-9):.2f} frames/s), peak host memory {peak_host_mb():.0f} MiB{gpu} "
        f"-> {display(out_dir)}"
    )
    job.finish()
    return errors.EXIT_SOME_FAILED if failures else errors.EXIT_OK


def check_outputs_possible(model, camera, formats: list[str], source) -> None:
    """CommandError (exit 2, before any input runs) when the model cannot give what was asked: metres from a
    canonical-camera model without this camera, point clouds from a relative model."""
    from .camera import missing_camera

    problem = missing_camera(model.config, camera)
    if problem:
        raise errors.CommandError(f"{display(source)}: {problem}; give this camera with --focal-length-x/-y or "
                                  "--intrinsics")
    if "ply" in formats and not model.config.metric:
        from .preflight import ply_refusal

        raise ply_refusal(source, getattr(model, "kind_source", None) == "metadata")


def _infer_one(args, runner, path: Path, name: str, formats: list[str], camera, out_dir: Path,
               prog: str, progress: bool = True, on_frame=None) -> int | str:
    """One input into its outputs: its frame count, or the one line that reported why it failed (nothing of it
    is left; the other inputs still run)."""
    import torch

    from .frame_sources import InputError, open_source
    from .runtime import NonFiniteDepthError

    try:
        check_output_name(path, name)
        source = open_source(path, max_res=args.max_res, max_len=args.max_len, target_fps=args.target_fps)
        return run_one(runner, source, out_dir, name, formats, bool(runner.model.config.metric), camera,
                       layout=args.layout, grayscale=args.grayscale, npz_compress=args.npz_compress,
                       progress=progress, prog=prog, on_frame=on_frame)
    except InputError as e:
        problem = errors.describe(e)
    except NonFiniteDepthError as e:  # nothing of this input was written
        problem = f"{display(path)}: {e}"
    except OSError as e:  # e.g. the disk filled up while writing
        problem = f"{display(e.filename or out_dir)}: cannot write output ({e.strerror or e})"
    except torch.cuda.OutOfMemoryError:
        problem = (f"{display(path)}: out of GPU memory at --input-size {args.input_size} "
                   f"(--precision {runner.precision}); try a smaller --input-size or --max-res, or fp16")
        torch.cuda.empty_cache()
    errors.report(prog, problem)
    return problem


if __name__ == "__main__":
    sys.exit(main())
