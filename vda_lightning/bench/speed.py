"""`vda bench speed`: where users wait, in one run against the published code — start-up (time to first depth),
streaming against offline (inputs 70 and 280), and the CPU long-video loop at input 280 and 518, each as a ratio to
the published script measured in the same run, with the outputs' largest difference. Writes
OUT_DIR/speed_<date>.json and .md.

The loop: the published `VideoDepthAnything.infer_video_depth` (video_depth_anything/video_depth.py, from a
checkout given by --published, run as it is: this package copies none of it) against `make_runner`'s offline
runner on the same frames (decoded once by our front end, the davis clip by default) and the same weights
(--checkpoint, or seeded random weights with active temporal layers), each in a fresh process, interleaved
(published, ours, published, ours ...) so that a busy spell on a shared CPU hits both; the ratio is the fastest
published run over our fastest. Start-up and streaming come from `bench/startup.py` (`measure_startup`,
`measure_streaming`) where that module is present; without it those rows say so and the loop still runs.
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..cli import errors
from ..cli.errors import CommandError
from ..cli.options import HelpFormatter, positive_int
from ..io import write_json_atomic, write_text_atomic
from ..models.input_contract import PATCH_SIZE, is_multiple_size
from .published import checkout_problem, published_class

PROG = "vda-bench speed"
DEFAULT_VIDEO = "../shared/videos/davis_rollercoaster.mp4"
GOALS = {280: 2.5, 518: 4.0}  # issue 28: the CPU loop's speed-up over the published one
STREAMING_SIZES = (70, 280)  # streaming per frame against offline: issue 28's input, and the loop's


def _case(text: str) -> tuple[int, int]:
    try:
        size, frames = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a case is INPUT_SIZE:FRAMES (e.g. 280:70), got {text!r}") from None
    if size <= 0 or frames <= 0 or not is_multiple_size((size, size)):  # the published vits: patch 14
        raise argparse.ArgumentTypeError(f"case {text!r}: the input size must be a positive multiple of "
                                         f"{PATCH_SIZE}")
    return size, frames


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--published", default=os.environ.get("VDA_PUBLISHED_DIR"),
                   help="a checkout of the published Video-Depth-Anything code (default: $VDA_PUBLISHED_DIR); its "
                        "imports (einops, ...) must be importable, e.g. through PYTHONPATH")
    p.add_argument("--video", default=DEFAULT_VIDEO, help="the clip both loops read")
    p.add_argument("--max-res", type=positive_int, default=480, help="long side of the decoded frames (480x270)")
    p.add_argument("--cases", type=lambda v: [_case(c) for c in v.split(",") if c], default=[(280, 70), (518, 54)],
                   help="comma list of INPUT_SIZE:FRAMES for the loop")
    p.add_argument("--checkpoint", default=None, help="weights (default: seeded random vits weights)")
    p.add_argument("--encoder", default="vits", help="encoder of the random weights")
    p.add_argument("--backend", default="pytorch", choices=("pytorch", "onnxruntime"), help="our loop's backend")
    p.add_argument("--repeats", type=positive_int, default=1, help="interleaved runs per side; the fastest is kept")
    p.add_argument("--threads", type=int, default=0, help="torch threads in every worker (0: torch's default)")
    p.add_argument("--skip", default="", help="comma list of parts to leave out: startup, streaming, loop")
    p.add_argument("--out-dir", default="evaluation/results", help="where speed_<date>.json/.md go")
    return p


def run_speed_bench(argv, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(list(argv))
    args.argv = [str(a) for a in argv]
    return errors.run_command(prog, lambda: _bench(args, prog), known=(ValueError,))


# ----------------------------------------------------------------------------------------------- the workers
def _weights(spec: dict):
    import torch

    if spec.get("checkpoint"):
        from .. import load_model

        return load_model(spec["checkpoint"], expect="video")
    from .workloads import perturbed_model

    torch.manual_seed(0)
    return perturbed_model(spec["encoder"])


def _published_model(spec: dict, ours):
    """The published class from the checkout, given our weights (the published key layout, loaded strictly)."""
    VideoDepthAnything = published_class(spec["published"])
    cfg = ours.config
    model = VideoDepthAnything(encoder=cfg.encoder, features=cfg.features, out_channels=list(cfg.out_channels))
    model.load_state_dict(ours.state_dict(), strict=True)
    return model.eval()


def loop_worker(spec: dict) -> dict:
    """One timed loop in this process: the published `infer_video_depth` or our offline runner."""
    import torch

    from ..inference.frame_sources import open_source

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    frames = list(open_source(spec["video"], max_res=spec["max_res"], max_len=spec["length"]))
    ours = _weights(spec).eval()
    if spec["side"] == "published":
        model = _published_model(spec, ours)
        run = lambda: model.infer_video_depth(np.stack(frames), 24, input_size=spec["input_size"],  # noqa: E731
                                              device="cpu", fp32=True)[0]
    else:
        from ..inference.runners import make_runner

        model = ours
        if spec.get("onnx"):
            from ..deploy.ort_backend import OnnxRuntimeModel

            model = OnnxRuntimeModel(spec["onnx"], "offline", "cpu", spec.get("threads") or 0)
        from ..inference.pipeline import run_pipelined

        runner = make_runner(model, "offline", spec["input_size"], "cpu", "fp32")

        def run():  # as vda infer runs it: reading, the model and stitching in their three threads
            maps = []
            run_pipelined(runner, iter(frames), maps.append)
            return np.stack(maps)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        depth = np.asarray(run(), np.float32)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    np.save(spec["save"], depth)
    return {"side": spec["side"], "input_size": spec["input_size"], "frames": len(frames),
            "frame_size": list(frames[0].shape[:2]), "seconds": seconds, "cpu_seconds": cpu,
            "threads": torch.get_num_threads()}


def _run_worker(spec: dict) -> dict:
    cmd = [sys.executable, "-m", "vda_lightning.bench.speed", "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CommandError(f"the {spec['side']} loop at input {spec['input_size']} failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------------------------- the parts
def measure_loops(args, tmp: Path, prog: str) -> list[dict]:
    """Each case: published and ours interleaved `repeats` times; the fastest of each, their ratio, the outputs'
    largest difference."""
    rows = []
    base = {"video": args.video, "max_res": args.max_res, "checkpoint": args.checkpoint, "encoder": args.encoder,
            "published": args.published, "threads": args.threads}
    if args.backend == "onnxruntime":
        base["onnx"] = str(_export(base, tmp, prog))
    for size, length in args.cases:
        best: dict[str, dict] = {}
        for repeat in range(args.repeats):
            for side in ("published", "ours"):
                print(f"{prog}: {side} loop, input {size}, {length} frames (run {repeat + 1}) ...", file=sys.stderr,
                      flush=True)
                r = _run_worker({**base, "side": side, "input_size": size, "length": length,
                                 "save": str(tmp / f"{side}_{size}.npy")})
                r["load_avg"] = os.getloadavg()
                if side not in best or r["seconds"] < best[side]["seconds"]:
                    best[side] = {**r, "all_seconds": best.get(side, {}).get("all_seconds", []) + [r["seconds"]]}
                else:
                    best[side]["all_seconds"].append(r["seconds"])
        pub, ours = np.load(tmp / f"published_{size}.npy"), np.load(tmp / f"ours_{size}.npy")
        diff = float(np.abs(pub - ours).max()) if pub.shape == ours.shape else float("inf")
        rows.append({"input_size": size, "frames": length, "published": best["published"], "ours": best["ours"],
                     "speedup": best["published"]["seconds"] / best["ours"]["seconds"],
                     "cpu_speedup": best["published"]["cpu_seconds"] / best["ours"]["cpu_seconds"],
                     "max_abs_diff": diff, "max_rel_diff": diff / max(float(np.abs(pub).max()), 1e-12),
                     "goal": GOALS.get(size), "backend": args.backend})
    return rows


def _export(base: dict, tmp: Path, prog: str) -> Path:
    from ..deploy.onnx_export import export_onnx

    print(f"{prog}: exporting the model for onnxruntime ...", file=sys.stderr, flush=True)
    folder = tmp / "onnx"
    export_onnx(_weights(base), folder / "model.onnx", parts=True, streaming=False, whole=False, fp16=False,
                source=base.get("checkpoint"), log=lambda _m: None)
    return folder


def _other_part(name: str, args, input_size: int = 280) -> dict:
    """start-up / streaming from bench/startup.py (another part of issue 28), called with the options it takes."""
    try:
        from . import startup
    except ImportError:
        return {"missing": "vda_lightning/bench/startup.py is not there yet: no figure"}
    fn = getattr(startup, f"measure_{name}", None)
    if fn is None:
        return {"missing": f"bench/startup.py has no measure_{name}: no figure"}
    offered = {"published": args.published, "video": args.video, "checkpoint": args.checkpoint,
               "encoder": args.encoder, "max_res": args.max_res, "input_size": input_size, "threads": args.threads}
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offered.items() if takes_all or k in params}
    try:
        result = fn(**kwargs)
    except Exception as e:  # that part's own failure is reported, and the loop still runs
        return {"missing": f"measure_{name} failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}"}
    return result if isinstance(result, dict) else {"result": result}


def _bench(args, prog: str) -> int:
    import tempfile

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - {"startup", "streaming", "loop"}
    if unknown:
        raise CommandError(f"--skip: unknown part(s) {', '.join(sorted(unknown))} (startup, streaming, loop)")
    if "loop" not in skip:
        problem = checkout_problem(args.published)
        if problem:
            raise CommandError(f"--published {problem}; give one, or --skip loop")
        if not Path(args.video).is_file():
            raise CommandError(f"--video {args.video}: no such file")
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["vda bench speed", *args.argv]),
              "cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="vda-bench-speed-") as tmp:
        if not args.checkpoint:  # one weights file for every part: the seeded random weights, written once
            from .. import save_model

            args.checkpoint = str(save_model(_weights({"encoder": args.encoder}), Path(tmp) / "random.safetensors"))
            report["weights"] = f"seeded random {args.encoder} weights (active temporal layers)"
        report["startup"] = {"skipped": True} if "startup" in skip else _other_part("startup", args)
        report["streaming"] = ({"skipped": True} if "streaming" in skip else  # the issue's input, and the loop's
                               {f"input {size}": _other_part("streaming", args, input_size=size)
                                for size in STREAMING_SIZES})
        report["loop"] = [] if "loop" in skip else measure_loops(args, Path(tmp), prog)
    report["load_avg_at_end"] = os.getloadavg()
    out = Path(args.out_dir)
    stem = out / f"speed_{datetime.date.today().isoformat()}"
    write_json_atomic(stem.with_suffix(".json"), report)
    text = markdown(report)
    write_text_atomic(stem.with_suffix(".md"), text)
    print(text)
    print(f"{prog}: written to {stem}.json and .md")
    return 0


def markdown(report: dict) -> str:
    lines = [f"# vda bench speed, {report['date']}", "", f"`{report['command']}`", "",
             f"{report['cpus']} CPUs; load average at start {_load(report['load_avg_at_start'])}, at end "
             f"{_load(report['load_avg_at_end'])} (ratios are measured in the same run, interleaved).", ""]
    for name in ("startup", "streaming"):
        part = report[name]
        lines.append(f"## {name.capitalize()}")
        lines.append("")
        if part.get("skipped") or part.get("missing"):
            lines += ["skipped (--skip)" if part.get("skipped") else part["missing"], ""]
        else:
            lines += _items(part) + [""]
    lines += ["## The CPU long-video loop against the published `infer_video_depth`", ""]
    if report["loop"]:
        lines += ["| input | frames | published s | ours s | speed-up (goal) | CPU-s ratio | max abs diff | backend |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in report["loop"]:
            goal = f" (≥ {r['goal']}×)" if r["goal"] else ""
            lines.append(f"| {r['input_size']} | {r['frames']} | {r['published']['seconds']:.1f} | "
                         f"{r['ours']['seconds']:.1f} | {r['speedup']:.2f}×{goal} | {r['cpu_speedup']:.2f}× | "
                         f"{r['max_abs_diff']:.1e} | {r['backend']} |")
    else:
        lines.append("skipped (--skip loop)")
    return "\n".join(lines) + "\n"


def _items(part: dict, indent: str = "") -> list[str]:
    lines = []
    for k, v in part.items():
        if isinstance(v, dict):
            lines += [f"{indent}- {k}:"] + _items(v, indent + "  ")
        else:
            lines.append(f"{indent}- {k}: {_fmt(v)}")
    return lines


def _load(v) -> str:
    return ", ".join(f"{x:.1f}" for x in v)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(errors.run_command(PROG, lambda: print(json.dumps(loop_worker(json.loads(sys.argv[2])))) or 0,
                                    known=(ValueError,)))
    sys.exit(run_speed_bench(sys.argv[1:]))
