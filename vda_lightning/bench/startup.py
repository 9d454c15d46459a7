"""`vda bench startup`: time to first depth, ours against the published script, and how fast a command refuses.

Time to first depth is what a user waits before the first map exists: the imports, building the network, loading
the weights (with our checks: the NaN/Inf scan, the kind), and the first 32-frame window, on the same frames and
the same weights. Each side runs in a fresh process (`--worker`), alternately, `--repeats` times; the figures are
the medians, measured from the process's spawn:

* ours: `runners.open_model` + `make_runner` + the first map of `OfflineRunner.run`, as `vda infer` runs them;
* published: `video_depth_anything/video_depth.py` from a checkout of the published repository (`--published
  DIR`, not vendored here; without it only our side is measured): build `VideoDepthAnything`, `load_state_dict`
  of `torch.load`, `infer_video_depth` on the same frames (one window for 32 frames), fp32 on the CPU.

Both read the weights from one published-layout `.pth` named as the published files are (so neither probes the
kind). The refusals (`vda infer nope.mp4`; `vda infer INPUT --save ply` with a relative checkpoint whose
metadata says so) are timed as whole `vda` processes. `measure_startup` returns the dict that is printed and
written as JSON (`--json`, e.g. under evaluation/results/). `measure_streaming` here is `bench/streaming.py`'s
figure for a checkpoint (what `vda bench speed` calls beside `measure_startup`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..cli import errors
from ..cli.options import HelpFormatter, add_input_size, encoder_names, positive_int
from .published import checkout_problem

PROG = "vda-bench startup"
PUBLISHED_CONFIGS = {  # run.py's model_configs
    "vits": {"encoder": "vits", "features": 64, "out_channels": [48, 96, 192, 384]},
    "vitb": {"encoder": "vitb", "features": 128, "out_channels": [96, 192, 384, 768]},
    "vitl": {"encoder": "vitl", "features": 256, "out_channels": [256, 512, 1024, 1024]},
}


def _ours(spec: dict) -> dict:
    from ..inference.runners import make_runner, open_model
    from ..trust import load_npy

    marks = {"import": time.time()}  # torch itself is imported by open_model, as in vda infer
    model, _ = open_model("pytorch", "offline", checkpoint=spec["checkpoint"], encoder=spec["encoder"],
                          device="cpu", precision="fp32")
    marks["load"] = time.time()
    runner = make_runner(model, "offline", spec["input_size"], "cpu", "fp32")
    next(iter(runner.run(iter(load_npy(spec["frames"])))))
    marks["first_depth"] = time.time()
    return marks


def _published(spec: dict) -> dict:
    import torch

    from ..trust import load_npy
    from .published import published_class

    VideoDepthAnything = published_class(spec["published"])

    marks = {"import": time.time()}
    model = VideoDepthAnything(**PUBLISHED_CONFIGS[spec["encoder"]])
    model.load_state_dict(torch.load(spec["checkpoint"], map_location="cpu", weights_only=True), strict=True)
    model = model.to("cpu").eval()
    marks["load"] = time.time()
    model.infer_video_depth(load_npy(spec["frames"]), 30.0, input_size=spec["input_size"], device="cpu", fp32=True)
    marks["first_depth"] = time.time()
    return marks


def _spawn(spec: dict) -> dict:
    """One worker process: its marks as seconds since it was spawned."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "vda_lightning.bench.startup", "--worker", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise errors.CommandError(f"{spec['side']} worker failed: {proc.stderr.strip().splitlines()[-1:]}")
    from ..trust import parse_json

    marks = parse_json(proc.stdout.strip().splitlines()[-1], "worker output")
    return {k: round(v - start, 3) for k, v in marks.items()}


def _refusal_seconds(argv: list[str]) -> tuple[float, int, int]:
    """(wall seconds, exit status, stderr lines) of one whole `vda` process."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vda_lightning", *argv], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return round(time.perf_counter() - start, 3), proc.returncode, len(proc.stderr.splitlines())


def _prepare(checkpoint, encoder: str | None, frames: int, size: tuple[int, int], tmp: Path) -> tuple[Path, Path,
                                                                                                         Path, str]:
    """The weights as a published .pth (and as our safetensors with metadata), the frames as .npy."""
    import numpy as np
    import torch

    from .. import load_model, save_model
    from .infer import synthetic_video

    model = load_model(checkpoint, encoder=encoder, metric=False)
    encoder = model.config.encoder
    pth = tmp / f"video_depth_anything_{encoder}.pth"
    torch.save(model.state_dict(), pth)
    ours = save_model(model, tmp / "relative.safetensors")
    clip = tmp / "frames.npy"
    np.save(clip, np.stack(list(synthetic_video(frames, *size))))
    return pth, ours, clip, encoder


def measure_startup(checkpoint, encoder: str | None = None, input_size: int = 280, frames: int = 32,
                    size: tuple[int, int] = (270, 480), published: str | None = None, repeats: int = 3) -> dict:
    """Time to first depth (ours, published) and the refusal times, as a dict (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="vda-bench-startup-") as tmp:
        tmp = Path(tmp)
        pth, ours_file, clip, encoder = _prepare(checkpoint, encoder, frames, size, tmp)
        spec = {"checkpoint": str(pth), "encoder": encoder, "input_size": input_size, "frames": str(clip),
                "published": published}
        sides = ["ours", "published"] if published else ["ours"]
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for _ in range(repeats):
            for side in sides:
                runs[side].append(_spawn({**spec, "side": side}))
        (tmp / "frames").mkdir()
        refusals = {"vda infer nope.mp4": _refusal_seconds(["infer", "nope.mp4", "--checkpoint", str(pth)]),
                    "vda infer FRAMES --save ply (relative metadata)": _refusal_seconds(
                        ["infer", str(tmp / "frames"), "--checkpoint", str(ours_file), "--save", "ply",
                         "--output-dir", str(tmp / "out")])}
    result = {"encoder": encoder, "input_size": input_size, "frames": frames, "frame_size": list(size),
              "repeats": repeats, "load_average": list(os.getloadavg())}
    for side, marks in runs.items():
        result[side] = {k: statistics.median(m[k] for m in marks) for k in marks[0]}
    if published:
        result["first_depth_ours_minus_published_s"] = round(
            result["ours"]["first_depth"] - result["published"]["first_depth"], 3)
    result["refusals"] = {k: {"seconds": s, "exit": code, "stderr_lines": n} for k, (s, code, n) in refusals.items()}
    return result


def measure_streaming(checkpoint, encoder: str | None = None, input_size: int = 70, frames: int = 40,
                      size: tuple[int, int] = (120, 160), published: str | None = None,
                      read_ahead: int | None = None) -> dict:
    """Streaming's cost per frame against offline's per output frame and the published streaming loop, in one
    run (`bench/streaming.py`, `measure_streaming` on a model and frames); for callers that hold a checkpoint."""
    import numpy as np

    from .. import load_model
    from . import streaming
    from .infer import synthetic_video

    model = load_model(checkpoint, encoder=encoder, metric=False)
    clip = np.stack(list(synthetic_video(frames, *size)))
    return streaming.measure_streaming(model, clip, input_size, published, read_ahead)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="the weights both sides load")
    p.add_argument("--encoder", choices=encoder_names(), default=None, help="(default: from the checkpoint)")
    add_input_size(p, default=280)
    p.add_argument("--frames", type=positive_int, default=32, help="frames of the synthetic clip (32: one window)")
    p.add_argument("--height", type=positive_int, default=270)
    p.add_argument("--width", type=positive_int, default=480)
    p.add_argument("--published", metavar="DIR", default=os.environ.get("VDA_PUBLISHED_DIR"),
                   help="a checkout of the published repository (default: $VDA_PUBLISHED_DIR; none: ours only)")
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--json", metavar="FILE", default=None, help="also write the figures here")
    return p


def run_startup_bench(argv, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    if not os.path.exists(args.checkpoint):
        return errors.fail(prog, f"{args.checkpoint}: no such checkpoint file")
    problem = checkout_problem(args.published) if args.published else None
    if problem:
        return errors.fail(prog, problem)

    def body() -> int:
        result = measure_startup(args.checkpoint, args.encoder, args.input_size, args.frames,
                                 (args.height, args.width), args.published, args.repeats)
        print(json.dumps(result, indent=1))
        if args.json:
            from ..io import write_json_atomic

            write_json_atomic(args.json, result)
        return errors.EXIT_OK

    return errors.run_command(prog, body)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        from ..trust import parse_json

        worker_spec = parse_json(sys.argv[2], "worker spec")
        print(json.dumps((_ours if worker_spec["side"] == "ours" else _published)(worker_spec)))
        sys.exit(0)
    sys.exit(run_startup_bench(sys.argv[1:]))
