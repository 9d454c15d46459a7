"""`vda-bench infer`: frames/s and peak host/GPU memory of the streaming runner vs the published-loop baseline.

Every (mode, backend, length) measurement runs in a fresh subprocess so that peak RSS (ru_maxrss) belongs to that
run alone; all see the same synthetic video (generated frame by frame, so the runner's source holds nothing) and
the same weights, and their outputs are compared when more than one ran on a length. `--backend
pytorch,onnxruntime` runs the runners on both backends in the same run (the onnxruntime one on `--onnx DIR`, or on
an export of the benchmark's own weights made here; the published-loop baseline is PyTorch only).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..cli import errors
from ..cli.options import (
    HelpFormatter,
    add_checkpoint,
    add_device,
    add_encoder,
    add_input_size,
    add_precision,
    positive_int,
    resolve_device,
)
from ..io import write_json_atomic

MODES = ("runner", "baseline", "streaming")
BACKENDS = ("pytorch", "onnxruntime")
PROG = "vda-bench infer"


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
    return (synthetic_frame(i, height, width) for i in range(length))


def _build_model(spec: dict):
    import torch

    if spec.get("checkpoint"):
        from .. import load_model

        return load_model(spec["checkpoint"], encoder=spec["encoder"], expect="video")
    from ..models import build_video_model

    torch.manual_seed(0)
    model = build_video_model(spec["encoder"]).eval()
    with torch.no_grad():  # random but active temporal layers (fresh ones are exact identities)
        for m in model.head.motion_modules:
            torch.nn.init.normal_(m.temporal_transformer.proj_out.weight, std=0.02)
    return model


def worker(spec: dict) -> dict:
    """One measurement; called in a subprocess by run_infer_bench."""
    import torch

    from ..inference.baseline import published_loop
    from ..inference.offline import OfflineRunner
    from ..inference.runtime import resolve_device
    from ..inference.streaming import StreamingRunner
    from ..inference.writers import DepthSpool

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
        model = _build_model(spec).to(device)
    frames = synthetic_video(spec["length"], spec["height"], spec["width"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), time.process_time()
    encoded = None
    if spec["mode"] == "baseline":
        out = published_loop(model, frames, spec["input_size"], device, spec["precision"])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if spec.get("save"):
            out.tofile(spec["save"])
        count = len(out)
    else:
        Runner = OfflineRunner if spec["mode"] == "runner" else StreamingRunner
        runner = Runner(model, spec["input_size"], device, "fp32" if onnx else spec["precision"])
        spool = DepthSpool(spec.get("save") or os.devnull)  # what vda-infer does with finished maps
        for depth in runner.run(frames):
            spool.append(depth)
        spool.close()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        count = spool.count
        encoded = getattr(runner, "frames_encoded", None)
    result = {
        **{k: spec[k] for k in ("mode", "encoder", "input_size", "precision", "length", "height", "width")},
        "backend": spec.get("backend", "pytorch"),
        "device": str(device) if not onnx else "onnxruntime:" + ",".join(model.providers),
        "frames": count, "seconds": elapsed, "frames_per_s": count / elapsed,
        "cpu_seconds": cpu, "frames_per_cpu_s": count / cpu,  # less sensitive to other jobs on a shared CPU
        "encoder_frame_passes": encoded,
        "peak_host_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "host_mib_before_run": rss_before,
    }
    if device.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    add_encoder(p, default="vits", help="encoder size of the model (and of --checkpoint, when given)")
    add_checkpoint(p, required=False, help="weights to use (default: seeded random weights)")
    add_input_size(p)
    add_precision(p, default="fp32")
    add_device(p)
    p.add_argument("--lengths", default="54", help="comma list of video lengths (frames)")
    p.add_argument("--height", type=int, default=518, help="synthetic frame height")
    p.add_argument("--width", type=int, default=518, help="synthetic frame width")
    p.add_argument("--modes", default="runner,baseline", help=f"comma list of {','.join(MODES)}")
    p.add_argument("--backend", default="pytorch",
                   help=f"comma list of {','.join(BACKENDS)}: each runs the runner modes in the same run")
    p.add_argument("--onnx", metavar="DIR", default=None,
                   help="onnxruntime: an export of the same weights (default: exported here from them)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="interleaved repeats per mode; the fastest is kept")
    p.add_argument("--json", default="infer_bench.json", help="where to write the results")
    return p


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


def run_infer_bench(argv, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(list(argv))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES) or not modes:
        parser.error(f"--modes takes a comma list of {','.join(MODES)}; got {args.modes!r}")
    try:
        lengths = [positive_int(x) for x in args.lengths.split(",")]
    except argparse.ArgumentTypeError as e:
        parser.error(f"--lengths: {e}")
    from ..models.input_contract import DEFAULT_CONTRACT, FrameShapeError

    try:  # the network input size first: a frame the model cannot take is refused before any worker starts
        DEFAULT_CONTRACT.checked_network_size(args.height, args.width, args.input_size, video=True,
                                              what=f"--height {args.height} --width {args.width}")
    except FrameShapeError as e:
        parser.error(str(e))
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    if set(backends) - set(BACKENDS) or not backends:
        parser.error(f"--backend takes a comma list of {','.join(BACKENDS)}; got {args.backend!r}")
    if "onnxruntime" in backends and args.precision == "bf16":
        parser.error("--backend onnxruntime runs fp32 or fp16 exports, not --precision bf16")
    return errors.run_command(prog, lambda: _bench(args, modes, lengths, backends, prog))


def _runs(modes: list[str], backends: list[str]) -> list[tuple[str, str]]:
    """(mode, backend) pairs measured: every mode on PyTorch, the runner modes on onnxruntime too."""
    return [(m, b) for m in modes for b in backends if not (b == "onnxruntime" and m == "baseline")]


def _compared(runs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The runs whose outputs are kept for a comparison: runner vs baseline, each onnxruntime mode vs PyTorch's."""
    keep = set()
    if {("runner", "pytorch"), ("baseline", "pytorch")} <= set(runs):
        keep |= {("runner", "pytorch"), ("baseline", "pytorch")}
    for mode, backend in runs:
        if backend == "onnxruntime" and (mode, "pytorch") in runs:
            keep |= {(mode, backend), (mode, "pytorch")}
    return keep


def _export_for_bench(args, modes: list[str], folder: Path, prog: str) -> tuple[Path, dict]:
    """The benchmark's own weights as the onnxruntime backend's graphs, timed."""
    from ..deploy.onnx_export import export_onnx

    model = _build_model({"encoder": args.encoder, "checkpoint": args.checkpoint})
    print(f"{prog}: exporting the model for onnxruntime ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    written = export_onnx(model, folder / "model.onnx", parts="runner" in modes, streaming="streaming" in modes,
                          whole=False, fp16=args.precision == "fp16", source=args.checkpoint, log=lambda _m: None)
    return folder, {"seconds": time.perf_counter() - start, "files": [p.name for p in written]}


def _bench(args, modes: list[str], lengths: list[int], backends: list[str], prog: str) -> int:
    resolve_device(args.device)  # cuda without a GPU: one error line here rather than a traceback per worker
    rows, export_info = [], None
    runs = _runs(modes, backends)
    with tempfile.TemporaryDirectory(prefix="vda-bench-") as tmp:
        onnx_dir = args.onnx
        if "onnxruntime" in backends and onnx_dir is None:
            onnx_dir, export_info = _export_for_bench(args, modes, Path(tmp) / "onnx", prog)
        for length in lengths:
            saved, best = {}, {}
            for repeat in range(args.repeats):  # interleaved, so a busy spell on a shared CPU hits every run
                for mode, backend in runs:
                    key = (mode, backend)
                    spec = {"mode": mode, "encoder": args.encoder, "checkpoint": args.checkpoint,
                            "input_size": args.input_size, "precision": args.precision, "device": args.device,
                            "length": length, "height": args.height, "width": args.width, "threads": args.threads,
                            "backend": backend, "onnx": str(onnx_dir) if onnx_dir else None}
                    if repeat == 0 and key in _compared(runs):
                        spec["save"] = saved[key] = str(Path(tmp) / f"{mode}_{backend}_{length}.f32")
                    label = mode if backend == "pytorch" else f"{mode} ({backend})"
                    print(f"{prog}: {label} on {length} frames (run {repeat + 1}) ...", file=sys.stderr,
                          flush=True)
                    r = _run_worker(spec)
                    if key in best:
                        r["all_seconds"] = best[key]["all_seconds"] + [r["seconds"]]
                        r["peak_host_mib"] = max(r["peak_host_mib"], best[key]["peak_host_mib"])
                        if r["seconds"] > best[key]["seconds"]:
                            r = {**best[key], "all_seconds": r["all_seconds"], "peak_host_mib": r["peak_host_mib"]}
                    else:
                        r["all_seconds"] = [r["seconds"]]
                    best[key] = r
            rows += [best[k] for k in runs]
            _attach_diffs(rows[-len(runs):], saved, (args.height, args.width))
            for f in saved.values():
                os.unlink(f)
    _attach_speedups(rows)
    _print_table(rows)
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                          "python": platform.python_version(), "torch": _torch_version(),
                          "onnxruntime": _onnxruntime_version() if "onnxruntime" in backends else None},
              "args": vars(args), "onnx_export": export_info, "results": rows}
    write_json_atomic(args.json, report)
    print(f"{prog}: results written to {args.json}")
    return 0


def _torch_version() -> str:
    import torch

    return torch.__version__


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _attach_diffs(rows, saved: dict, shape) -> None:
    """Output differences of one length: runner vs baseline (PyTorch), onnxruntime vs PyTorch per mode."""
    for r in rows:
        key = (r["mode"], r["backend"])
        if key not in saved:
            continue
        if r["mode"] in ("runner", "baseline") and {("runner", "pytorch"), ("baseline", "pytorch")} <= set(saved) \
                and r["backend"] == "pytorch":
            r["max_rel_diff_runner_vs_baseline"] = _compare(Path(saved[("runner", "pytorch")]),
                                                            Path(saved[("baseline", "pytorch")]), shape)
        if r["backend"] == "onnxruntime" and (r["mode"], "pytorch") in saved:
            r["max_rel_diff_vs_pytorch"] = _compare(Path(saved[key]), Path(saved[(r["mode"], "pytorch")]), shape)


def _attach_speedups(rows):
    base = {r["length"]: r for r in rows if r["mode"] == "baseline"}
    torch_rows = {(r["length"], r["mode"]): r for r in rows if r["backend"] == "pytorch"}
    for r in rows:
        if r["length"] in base:
            r["speedup_vs_baseline"] = r["frames_per_s"] / base[r["length"]]["frames_per_s"]
            r["cpu_speedup_vs_baseline"] = r["frames_per_cpu_s"] / base[r["length"]]["frames_per_cpu_s"]
        ref = torch_rows.get((r["length"], r["mode"]))
        if r["backend"] == "onnxruntime" and ref:
            r["speedup_vs_pytorch"] = r["frames_per_s"] / ref["frames_per_s"]


def _print_table(rows):
    cols = [("mode", "{}"), ("backend", "{}"), ("length", "{}"), ("frames_per_s", "{:.3f}"), ("seconds", "{:.1f}"),
            ("speedup_vs_baseline", "{:.2f}x"), ("speedup_vs_pytorch", "{:.2f}x"), ("cpu_seconds", "{:.1f}"),
            ("cpu_speedup_vs_baseline", "{:.2f}x"), ("encoder_frame_passes", "{}"), ("peak_host_mib", "{:.0f}"),
            ("peak_gpu_mib", "{:.0f}"), ("max_rel_diff_runner_vs_baseline", "{:.1e}"),
            ("max_rel_diff_vs_pytorch", "{:.1e}")]
    cols = [(c, f) for c, f in cols if any(c in r for r in rows)]
    table = [[c for c, _ in cols]] + [[f.format(r[c]) if r.get(c) is not None else "-" for c, f in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def _worker_main(spec: dict) -> int:
    """A worker prints its result as JSON; a known input error is one line on stderr and status 2."""
    from ..checkpoints import CheckpointError
    from ..deploy.ort_backend import OnnxBackendError

    return errors.run_command(PROG, lambda: print(json.dumps(worker(spec))),
                              known=(CheckpointError, OnnxBackendError))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(json.loads(sys.argv[2])))
    else:
        sys.exit(run_infer_bench(sys.argv[1:]))
