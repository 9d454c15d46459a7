"""`vda-bench infer`: frames/s and peak host/GPU memory of the model alone, of the long-video runner (in memory, and
end to end as `vda infer` runs it: decode -> infer -> write npz + png16), of the published-loop baseline and of the
streaming mode; per encoder, precision, frame size and speed lever, on the CPU or a GPU, in one run.

Modes (each row of the table):
  model       the model alone: forward of one (1, 32, 3, h, w) window, repeated (the published README's latency)
  runner      OfflineRunner over frames held in memory, maps to a spool (no decoding, no output files)
  e2e         vda infer's path with the threaded runner (pipeline.py): decode the video file, infer, spool, npz + png16
              (vda infer itself threads where `pipeline.overlap_pays`: on an accelerator, or with a spare CPU thread)
  e2e-serial  the same with the runner in one thread (vda infer before the threads), for the comparison
  baseline    the published loop restated (inference/baseline.py): host transforms, no feature reuse
  streaming   the online mode, one frame at a time

By default every measurement runs in a fresh subprocess so that peak RSS (ru_maxrss) belongs to that run alone;
`--in-process` runs them all in this process (faster on a GPU: one CUDA context, models built once; GPU peaks are
still per run, host peaks are then the process's so far). Synthetic frames are a deterministic moving scene; the
e2e modes read them back from an H.264 mp4 written first (or from `--video`, which also sets the frame size: the
video's own aspect). Outputs of runner and baseline, and of each speed lever against none, are compared.
`--backend pytorch,onnxruntime` runs the runner and streaming modes on both backends in the same run (the
onnxruntime one on `--onnx DIR`, or on an export of the benchmark's own weights made here, per encoder), compared
with PyTorch's outputs; the other modes are PyTorch only.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vda_lightning.memory import peak_rss_mib

from ..cli import errors
from ..cli.options import (
    PRECISIONS,
    HelpFormatter,
    add_checkpoint,
    add_device,
    add_input_size,
    comma_list,
    encoder_names,
    positive_int,
    resolve_device,
)
from ..io import write_json_atomic

MODES = ("model", "runner", "e2e", "e2e-serial", "baseline", "streaming")
BACKENDS = ("pytorch", "onnxruntime")
ONNX_MODES = ("runner", "streaming")
PROG = "vda-bench infer"
SYNTHETIC_CYCLE = 64  # distinct synthetic frames; longer videos repeat them (memory stays flat for 2,000 frames)


def synthetic_frame(i: int, height: int, width: int) -> np.ndarray:
    """Deterministic moving scene: a drifting gradient and a travelling bright square."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 120 * np.sin((x + 3 * i) / (width / 6.28))
    g = 127 + 120 * np.cos((y - 2 * i) / (height / 6.28))
    b = (x + y + 5 * i) % 256
    img = np.stack([r, g, b], axis=-1)
    s = max(height // 6, 2)
    cy, cx = (i * 3) % max(height - s, 1), (i * 7) % max(width - s, 1)
    img[cy : cy + s, cx : cx + s] = 250
    return img.astype(np.uint8)


def synthetic_video(length: int, height: int, width: int):
    """`length` frames, generated once per distinct frame and repeated after SYNTHETIC_CYCLE."""
    cache: dict[int, np.ndarray] = {}
    for i in range(length):
        j = i % SYNTHETIC_CYCLE
        if j not in cache:
            cache[j] = synthetic_frame(j, height, width)
        yield cache[j]


def write_synthetic_mp4(path: Path, length: int, height: int, width: int, fps: float = 24.0) -> Path:
    """The synthetic frames as H.264 (what the e2e modes decode); even sizes, as yuv420p needs."""
    import av

    from ..io import AtomicWrite

    with AtomicWrite(path) as tmp:
        with av.open(str(tmp.tmp), "w", format="mp4") as c:
            s = c.add_stream("libx264", rate=round(fps))
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            s.options = {"crf": "18", "preset": "veryfast"}
            for f in synthetic_video(length, height, width):
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    return path


def _build_model(spec: dict):
    import torch

    if spec.get("checkpoint"):
        from .. import load_model

        return load_model(spec["checkpoint"], encoder=spec["encoder"], expect="video")
    from .workloads import perturbed_model

    torch.manual_seed(0)
    return perturbed_model(spec["encoder"])  # random but active temporal layers (fresh ones are identities)


def _frames(spec: dict):
    if spec.get("video"):
        from ..inference.frame_sources import open_source

        return list(open_source(spec["video"], max_res=spec["max_res"], max_len=spec["length"]))
    return synthetic_video(spec["length"], spec["height"], spec["width"])


def _model_alone(model, spec: dict, device, shape) -> tuple[int, float, float, float, object]:
    """(frames, seconds, cpu seconds, first-call seconds, output of the seeded window) for the model alone."""
    import torch

    from ..devices import autocast
    from .workloads import sync

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 32, 3, *shape, generator=g).to(device)
    with torch.inference_mode(), autocast(device, spec["precision"]):
        t0 = time.perf_counter()
        out = model(x).float().cpu()  # first call: includes compilation / graph capture for those levers
        first = time.perf_counter() - t0
        for _ in range(spec["warmup"]):
            model(x)
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(spec["iters"]):
            model(x)
        sync(device)
    return 32 * spec["iters"], time.perf_counter() - t0, time.process_time() - c0, first, out


def measure(spec: dict, model=None) -> dict:
    """One measurement in this process (the worker of run_infer_bench); `model` reused when given."""
    import torch

    from ..devices import resolve_device
    from ..inference.baseline import published_loop
    from ..inference.offline import OfflineRunner
    from ..inference.streaming import StreamingRunner
    from ..inference.writers import DepthSpool
    from ..models.input_contract import DEFAULT_CONTRACT
    from ..models.speed import apply_levers, unapply

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    onnx = spec.get("backend") == "onnxruntime"
    if onnx:  # the runner feeds host tensors; onnxruntime picks its execution provider from the device
        from ..deploy.ort_backend import OnnxRuntimeModel

        model = OnnxRuntimeModel(spec["onnx"], "streaming" if spec["mode"] == "streaming" else "offline",
                                 spec["device"], spec.get("threads") or 0)
        device = resolve_device("cpu")
    else:
        device = resolve_device(spec["device"])
        model = (model if model is not None else _build_model(spec)).to(device).eval()
        apply_levers(model, spec.get("levers") or [])
    precision = "fp32" if onnx else spec["precision"]  # an fp16 export computes in fp16 by itself
    mode = spec["mode"]
    shape = DEFAULT_CONTRACT.network_size(spec["height"], spec["width"], spec["input_size"], video=True)
    frames = None if mode in ("model", "e2e", "e2e-serial") else _frames(spec)
    rss_before = peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    encoded, first = None, None
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        if mode == "model":
            count, elapsed, cpu, first, out = _model_alone(model, spec, device, shape)
            if spec.get("save"):
                out.numpy().astype(np.float32).tofile(spec["save"])
        elif mode == "baseline":
            out = published_loop(model, frames, spec["input_size"], device, spec["precision"])
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if spec.get("save"):
                out.tofile(spec["save"])
            count = len(out)
        elif mode in ("runner", "streaming"):
            runner = (OfflineRunner if mode == "runner" else StreamingRunner)(
                model, spec["input_size"], device, precision)
            spool = DepthSpool(spec.get("save") or os.devnull)  # what vda infer does with finished maps
            for depth in runner.run(frames):
                spool.append(depth)
            spool.close()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            count, encoded = spool.count, getattr(runner, "frames_encoded", None)
        else:  # e2e, e2e-serial: vda infer's own path on a video file
            count, encoded = _end_to_end(model, spec, device)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        if not onnx:
            unapply(model)
    result = {
        **{k: spec[k] for k in ("mode", "encoder", "input_size", "precision", "length", "height", "width")},
        "levers": "+".join(spec.get("levers") or []) or "none", "network": list(shape),
        "backend": spec.get("backend", "pytorch"),
        "device": str(device) if not onnx else "onnxruntime:" + ",".join(model.providers), "frames": count,
        "seconds": elapsed, "frames_per_s": count / elapsed,
        "ms_per_frame": 1000 * elapsed / count,
        "cpu_seconds": cpu, "frames_per_cpu_s": count / max(cpu, 1e-9),  # steadier on a shared CPU
        "encoder_frame_passes": encoded, "first_call_s": first,
        "peak_host_mib": peak_rss_mib(),
        "host_mib_before_run": rss_before,
    }
    if device.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _end_to_end(model, spec: dict, device) -> tuple[int, int]:
    """Decode -> infer -> npz + png16, through vda infer's own run_one (threaded) or the serial runner loop."""
    from ..inference import cli as infer_cli
    from ..inference.frame_sources import open_source
    from ..inference.offline import OfflineRunner
    from ..inference.writers import DepthSpool, write_outputs

    source = open_source(spec["video_file"], max_res=spec["max_res"], max_len=spec["length"])
    runner = OfflineRunner(model, spec["input_size"], device, spec["precision"])
    out_dir = Path(spec["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{spec['mode']}_{os.getpid()}"
    if spec["mode"] == "e2e":
        count = infer_cli.run_one(runner, source, out_dir, name, ["npz", "png16"], False, (470.4, 470.4),
                                  threads=True)
    else:
        spool = DepthSpool(out_dir / f".{name}.depths.f32.partial")
        try:
            for depth in runner.run(iter(source)):
                spool.append(depth)
            spool.close()
            write_outputs(spool, out_dir, name, ["npz", "png16"], metric=False, source=source, fps=source.fps)
            count = spool.count
        finally:
            spool.remove()
    return count, runner.frames_encoded


# --------------------------------------------------------------------------------------------- command line
def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--encoder", default="vits", help=f"comma list of encoder sizes ({','.join(encoder_names())})")
    add_checkpoint(p, required=False, help="weights to use (default: seeded random weights; one --encoder)")
    add_input_size(p)
    p.add_argument("--precision", default="fp32", help=f"comma list of {','.join(PRECISIONS)} (autocast dtypes)")
    add_device(p)
    p.add_argument("--lengths", default="54", help="comma list of video lengths (frames)")
    p.add_argument("--height", type=positive_int, default=518, help="synthetic frame height")
    p.add_argument("--width", type=positive_int, default=518, help="synthetic frame width")
    p.add_argument("--video", default=None, help="a video file to use instead of synthetic frames (its own size)")
    p.add_argument("--max-res", type=int, default=1280, help="--video: cap on the long side, as vda infer")
    p.add_argument("--modes", default="runner,baseline", help=f"comma list of {','.join(MODES)}")
    p.add_argument("--levers", default="none",
                   help="comma list of speed-lever settings, levers joined by '+' within one "
                        "(none, compile, channels_last, cuda_graphs; e.g. none,compile,compile+channels_last)")
    p.add_argument("--backend", default="pytorch",
                   help=f"comma list of {','.join(BACKENDS)}: onnxruntime runs the {'/'.join(ONNX_MODES)} modes too")
    p.add_argument("--onnx", metavar="DIR", default=None,
                   help="onnxruntime: an export of the same weights (default: exported here from them)")
    p.add_argument("--iters", type=positive_int, default=3, help="model mode: timed windows")
    p.add_argument("--warmup", type=int, default=1, help="model mode: untimed windows after the first call")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="interleaved repeats per mode; the fastest is kept")
    p.add_argument("--in-process", action="store_true",
                   help="run every measurement in this process (host peaks are then cumulative)")
    p.add_argument("--json", default="infer_bench.json", help="where to write the results")
    return p


def parse_args(argv, prog: str = PROG) -> argparse.Namespace:
    parser = build_parser(prog)
    args = parser.parse_args(list(argv))  # --help exits here, before torch is imported
    from ..models.levers import parse_levers

    try:
        args.encoders = comma_list(encoder_names(), "--encoder")(args.encoder)
        args.precisions = comma_list(PRECISIONS, "--precision")(args.precision)
        args.mode_list = comma_list(MODES, "--modes")(args.modes)
        args.length_list = [positive_int(x) for x in args.lengths.split(",")]
        args.lever_sets = [parse_levers(s.replace("+", ",")) for s in args.levers.split(",") if s.strip()]
        args.backends = comma_list(BACKENDS, "--backend")(args.backend)
    except (argparse.ArgumentTypeError, ValueError) as e:
        parser.error(str(e))
    if "onnxruntime" in args.backends and "bf16" in args.precisions:
        parser.error("--backend onnxruntime runs fp32 or fp16 exports, not --precision bf16")
    if args.onnx and len(args.encoders) > 1:
        parser.error("--onnx holds one model: give one --encoder")
    if not args.video:
        from ..models.input_contract import DEFAULT_CONTRACT, FrameShapeError

        try:  # the network input size first: a frame the model cannot take is refused before any worker starts
            DEFAULT_CONTRACT.checked_network_size(args.height, args.width, args.input_size, video=True,
                                                  what=f"--height {args.height} --width {args.width}")
        except FrameShapeError as e:
            parser.error(str(e))
    if args.checkpoint and len(args.encoders) > 1:
        parser.error("--checkpoint holds one model: give one --encoder")
    if not args.lever_sets:
        args.lever_sets = [[]]
    return args


def run_infer_bench(argv, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    from ..checkpoints import CheckpointError
    from ..inference.frame_sources import InputError

    known = (CheckpointError, InputError)
    if "onnxruntime" in args.backends:
        from ..deploy.ort_backend import OnnxBackendError

        known += (OnnxBackendError,)
    return errors.run_command(prog, lambda: _bench(args, prog), known=known)


def _run_worker(spec: dict) -> dict:
    cmd = [sys.executable, "-m", "vda_lightning.bench.infer", "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == errors.EXIT_USAGE:  # a known input error (e.g. the checkpoint): the worker's one line
        lines = proc.stderr.strip().splitlines() or ["the benchmark worker failed"]
        raise errors.CommandError(lines[-1].split(": error: ", 1)[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {spec['mode']}/{spec['length']} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(a: Path, b: Path, shape) -> float:
    """max |a - b| / max |b| over two raw float32 files, read in chunks."""
    n = int(np.prod(shape))
    worst, scale = 0.0, 0.0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = np.fromfile(fa, np.float32, n * 16), np.fromfile(fb, np.float32, n * 16)
            if x.size == 0 and y.size == 0:
                break
            if x.size != y.size:
                return float("inf")
            worst, scale = max(worst, float(np.abs(x - y).max())), max(scale, float(np.abs(y).max()))
    return worst / scale if scale else worst


def _frame_size(args) -> tuple[int, int]:
    if not args.video:
        return args.height, args.width
    from ..inference.frame_sources import open_source

    first = next(iter(open_source(args.video, max_res=args.max_res, max_len=1)))
    return first.shape[:2]


def _runs(modes: list[str], backends: list[str]) -> list[tuple[str, str]]:
    """(mode, backend) pairs measured: every mode on PyTorch, the runner and streaming modes on onnxruntime too."""
    return [(m, b) for m in modes for b in backends if b == "pytorch" or m in ONNX_MODES]


def _label(mode: str, backend: str) -> str:
    return mode if backend == "pytorch" else f"{mode}@{backend}"


def _export_for_bench(spec: dict, folder: Path, fp16: bool, prog: str) -> tuple[Path, dict]:
    """The benchmark's own weights as the onnxruntime backend's graphs (offline parts and the streaming step)."""
    from ..deploy.onnx_export import export_onnx

    model = _build_model(spec)
    print(f"{prog}: exporting the {spec['encoder']} model for onnxruntime ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    written = export_onnx(model, folder / "model.onnx", parts=True, streaming=True, whole=False, fp16=fp16,
                          source=spec.get("checkpoint"), log=lambda _m: None)
    return folder, {"encoder": spec["encoder"], "fp16": fp16, "seconds": time.perf_counter() - start,
                    "files": [p.name for p in written]}


def _bench(args, prog: str) -> int:
    device = resolve_device(args.device)  # cuda without a GPU: one error line here rather than a traceback per worker
    height, width = _frame_size(args)
    models: dict[str, object] = {}
    exports: dict[tuple[str, bool], tuple[Path, dict]] = {}
    rows = []
    runs = _runs(args.mode_list, args.backends)
    with tempfile.TemporaryDirectory(prefix="vda-bench-") as tmp:
        for length, encoder, precision in itertools.product(args.length_list, args.encoders, args.precisions):
            base = _base_spec(args, Path(tmp), length, encoder, precision, (height, width), exports, prog)
            if args.in_process and encoder not in models:
                models.clear()  # one model on the device at a time
                models[encoder] = _build_model(base)
            group = [(levers, *_measure_lever_set(args, base, levers, runs, models.get(encoder), Path(tmp), prog))
                     for levers in args.lever_sets]
            _compare_levers(group)
            for _, saved, best, these in group:
                rows += [best[_label(m, b)] for m, b in these]
                for f in saved.values():
                    os.unlink(f)
    _attach_ratios(rows)
    _print_table(rows)
    _write_report(args, rows, device, exports)
    print(f"{prog}: results written to {args.json}")
    return 0


def _base_spec(args, tmp: Path, length: int, encoder: str, precision: str, size: tuple[int, int],
               exports: dict, prog: str) -> dict:
    """What every run of one (length, encoder, precision) shares; writes the synthetic video and exports the
    onnxruntime graphs (once per encoder and fp16-ness, kept in `exports`) when a mode needs them."""
    height, width = size
    base = {"encoder": encoder, "checkpoint": args.checkpoint, "input_size": args.input_size,
            "precision": precision, "device": args.device, "length": length, "height": height,
            "width": width, "threads": args.threads, "video": args.video, "max_res": args.max_res,
            "iters": args.iters, "warmup": args.warmup, "out_dir": str(tmp / "out")}
    if {"e2e", "e2e-serial"} & set(args.mode_list):
        mp4 = tmp / f"synthetic_{length}_{height}x{width}.mp4"  # one per length, for every model
        base["video_file"] = args.video or str(mp4 if mp4.exists() else
                                               write_synthetic_mp4(mp4, length, height, width))
    if "onnxruntime" in args.backends:
        fp16 = precision == "fp16"
        if args.onnx:
            base["onnx"] = str(args.onnx)
        else:
            if (encoder, fp16) not in exports:
                exports[(encoder, fp16)] = _export_for_bench(
                    base, tmp / f"onnx_{encoder}_{'fp16' if fp16 else 'fp32'}", fp16, prog)
            base["onnx"] = str(exports[(encoder, fp16)][0])
    return base


def _measure_lever_set(args, base: dict, levers: list, runs, model, tmp: Path, prog: str) -> tuple[dict, dict, list]:
    """Every mode under one lever setting, `args.repeats` times interleaved; the fastest run of each mode, with
    every run's seconds. Returns (saved output files by mode, best row by mode, the (mode, backend) pairs run)."""
    saved, best = {}, {}
    these = [(m, b) for m, b in runs if b == "pytorch" or not levers]  # levers: PyTorch only
    for repeat in range(args.repeats):  # interleaved, so a busy spell on a shared CPU hits all modes
        for mode, backend in these:
            key = _label(mode, backend)
            spec = {**base, "mode": mode, "levers": levers if backend == "pytorch" else [], "backend": backend}
            if repeat == 0 and (mode in ("model", "runner", "baseline") or
                                ("onnxruntime" in args.backends and mode in ONNX_MODES)):
                spec["save"] = saved[key] = str(tmp / f"{key}_{'+'.join(levers)}.f32")
            label = "+".join(levers) or "no levers"
            print(f"{prog}: {key} {base['encoder']} {base['precision']} {label} on {base['length']} frames of "
                  f"{base['height']}x{base['width']} (run {repeat + 1}) ...", file=sys.stderr, flush=True)
            in_process = args.in_process and backend == "pytorch"
            best[key] = _fastest(best.get(key), measure(spec, model) if in_process else _run_worker(spec))
    _compare_outputs(saved, best, (base["height"], base["width"]))
    return saved, best, these


def _fastest(best: dict | None, r: dict) -> dict:
    """The faster of a mode's best run so far and run `r`, carrying every run's seconds and the highest host peak."""
    if best is None:
        r["all_seconds"] = [r["seconds"]]
        return r
    r["all_seconds"] = best["all_seconds"] + [r["seconds"]]
    r["peak_host_mib"] = max(r["peak_host_mib"], best["peak_host_mib"])
    if r["seconds"] > best["seconds"]:
        r = {**best, "all_seconds": r["all_seconds"], "peak_host_mib": r["peak_host_mib"]}
    return r


def _compare_outputs(saved: dict, best: dict, size: tuple[int, int]) -> None:
    """The runner against the published loop, and each onnxruntime mode against PyTorch's, where both were saved."""
    if {"runner", "baseline"} <= set(saved):
        err = _compare(Path(saved["runner"]), Path(saved["baseline"]), size)
        for m in ("runner", "baseline"):
            best[m]["max_rel_diff_runner_vs_baseline"] = err
    for mode in ONNX_MODES:  # onnxruntime vs PyTorch, same mode
        ort = _label(mode, "onnxruntime")
        if ort in saved and mode in saved:
            best[ort]["max_rel_diff_vs_pytorch"] = _compare(Path(saved[ort]), Path(saved[mode]), size)
            best[ort]["speedup_vs_pytorch"] = best[ort]["frames_per_s"] / best[mode]["frames_per_s"]


def _write_report(args, rows: list, device, exports: dict) -> None:
    """The JSON report: the machine, the arguments, every row and what the onnxruntime export took."""
    info = machine_info(device)
    if "onnxruntime" in args.backends:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    onnx_export = [e for _, e in exports.values()]
    report = {"machine": info, "args": {k: v for k, v in vars(args).items()}, "results": rows,
              "onnx_export": onnx_export[0] if len(onnx_export) == 1 else (onnx_export or None)}
    write_json_atomic(args.json, report)


def _compare_levers(group) -> None:
    """Each lever setting's model and runner outputs against the same mode without levers (when measured)."""
    plain = next((saved for levers, saved, *_ in group if not levers), None)
    if plain is None:
        return
    for levers, saved, best, _ in group:
        for mode in ("model", "runner"):
            if levers and mode in saved and mode in plain:
                best[mode]["max_rel_diff_vs_no_levers"] = _compare(Path(saved[mode]), Path(plain[mode]), (1 << 16,))


def machine_info(device=None) -> dict:
    import torch

    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    gpu_memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return info


def _key(r) -> tuple:
    return (r["encoder"], r["precision"], r["levers"], r["length"], r["height"], r["width"])


def _attach_ratios(rows) -> None:
    """Speed-ups against the baseline, and the ratios that show where time goes: e2e / model alone (the
    pipeline's goal: >= 0.9 on a GPU), e2e / runner (decode + write cost), e2e / e2e-serial (what the threads buy)."""
    by = {}
    for r in rows:
        by.setdefault(_key(r), {})[_label(r["mode"], r.get("backend", "pytorch"))] = r
    for modes in by.values():
        base = modes.get("baseline")
        for r in modes.values():
            if base is not None:
                r["speedup_vs_baseline"] = r["frames_per_s"] / base["frames_per_s"]
                r["cpu_speedup_vs_baseline"] = r["frames_per_cpu_s"] / base["frames_per_cpu_s"]
        e2e = modes.get("e2e")
        if e2e is not None:
            for other in ("model", "runner", "e2e-serial"):
                if other in modes:
                    e2e[f"e2e_vs_{other.replace('-', '_')}"] = e2e["frames_per_s"] / modes[other]["frames_per_s"]
                    e2e[f"e2e_vs_{other.replace('-', '_')}_cpu_time"] = (e2e["frames_per_cpu_s"]
                                                                         / modes[other]["frames_per_cpu_s"])


COLUMNS = [("mode", "{}"), ("backend", "{}"), ("encoder", "{}"), ("precision", "{}"), ("levers", "{}"),
           ("length", "{}"),
           ("frames_per_s", "{:.3f}"), ("ms_per_frame", "{:.1f}"), ("seconds", "{:.1f}"),
           ("speedup_vs_baseline", "{:.2f}x"), ("cpu_seconds", "{:.1f}"), ("e2e_vs_model", "{:.2f}"),
           ("e2e_vs_runner", "{:.2f}"), ("e2e_vs_e2e_serial", "{:.2f}"), ("encoder_frame_passes", "{}"),
           ("peak_host_mib", "{:.0f}"), ("peak_gpu_mib", "{:.0f}"), ("max_rel_diff_runner_vs_baseline", "{:.1e}"),
           ("max_rel_diff_vs_no_levers", "{:.1e}"), ("speedup_vs_pytorch", "{:.2f}x"),
           ("max_rel_diff_vs_pytorch", "{:.1e}")]


def table_lines(rows, columns=COLUMNS) -> list[str]:
    cols = [(c, f) for c, f in columns if any(r.get(c) is not None for r in rows)]
    table = [[c for c, _ in cols]] + [[f.format(r[c]) if r.get(c) is not None else "-" for c, f in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in table]


def _print_table(rows):
    print("\n".join(table_lines(rows)))


def _worker_main(spec: dict) -> int:
    """A worker prints its result as JSON; a known input error is one line on stderr and status 2."""
    from ..checkpoints import CheckpointError
    from ..deploy.ort_backend import OnnxBackendError
    from ..inference.frame_sources import InputError

    return errors.run_command(PROG, lambda: print(json.dumps(measure(spec))),
                              known=(CheckpointError, InputError, OnnxBackendError))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(json.loads(sys.argv[2])))
    else:
        sys.exit(run_infer_bench(sys.argv[1:]))
