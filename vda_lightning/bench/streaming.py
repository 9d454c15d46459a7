"""`vda bench streaming`: the online mode's cost per frame against the offline runner's per output frame, and against
the published `run_streaming.py` loop, in one run on the same frames and weights (issue 28).

Three measurements in this process, each after one untimed warm-up pass, CPU seconds (process time: all threads)
and wall seconds per frame:

* offline: `OfflineRunner.run` (the key-frame windows), per output frame;
* streaming: `StreamingRunner.run` (what `vda infer --mode streaming` runs), per frame; and with
  `read_ahead=1` (the encoder too frame by frame, as before issue 28);
* published streaming (with `--published DIR`, a checkout of the published repository, not vendored here):
  `video_depth_stream.VideoDepthAnything.infer_video_depth_one` frame by frame, fp32, as `run_streaming.py` calls
  it, and the largest difference of its maps from ours (relative to the largest depth).

`measure_streaming` returns the dict (ratios `streaming_vs_offline_cpu`, `streaming_vs_published_cpu`), which a
combined command may call; `vda bench streaming` prints it and writes it as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from ..cli import errors
from ..cli.options import HelpFormatter, add_input_size, positive_int
from .startup import PUBLISHED_CONFIGS

PROG = "vda-bench streaming"


def _timed(fn) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def _published_maps(model_dir: str, state_dict: dict, encoder: str, frames, input_size: int):
    """The published streaming loop over `frames` (a fresh model per pass: its cache lives on the model)."""
    import numpy as np

    from .published import published_class

    VideoDepthAnything = published_class(model_dir, "video_depth_stream")

    model = VideoDepthAnything(**PUBLISHED_CONFIGS[encoder])
    model.load_state_dict(state_dict, strict=True)
    model = model.eval()

    def run():
        model.transform, model.frame_id_list, model.frame_cache_list, model.id = None, [], [], -1  # a new stream
        return np.stack([model.infer_video_depth_one(f, input_size=input_size, device="cpu", fp32=True)
                         for f in frames])

    return run


def measure_streaming(model, frames, input_size: int = 70, published: str | None = None,
                      read_ahead: int | None = None) -> dict:
    """Per-frame cost of streaming vs offline (and vs the published loop), as a dict (module docstring). `model`:
    a VideoDepthAnything on the CPU; `frames`: uint8 (N, H, W, 3)."""
    import numpy as np
    import torch

    from ..inference.offline import OfflineRunner
    from ..inference.streaming import StreamingRunner, default_read_ahead

    n = len(frames)
    read_ahead = default_read_ahead(model, "cpu") if read_ahead is None else read_ahead
    passes = {"offline": lambda: np.stack(list(OfflineRunner(model, input_size).run(iter(frames)))),
              "streaming": lambda: np.stack(list(StreamingRunner(model, input_size, read_ahead=read_ahead)
                                                 .run(iter(frames)))),
              "streaming_frame_by_frame": lambda: np.stack(list(StreamingRunner(model, input_size, read_ahead=1)
                                                                .run(iter(frames))))}  # the encoder too: before
    if published:
        passes["published_streaming"] = _published_maps(published, model.state_dict(), model.config.encoder,
                                                         frames, input_size)
    result = {"encoder": model.config.encoder, "input_size": input_size, "frames": n,
              "frame_size": list(frames.shape[1:3]), "threads": torch.get_num_threads(), "read_ahead": read_ahead,
              "load_average": list(os.getloadavg())}
    maps = {}
    with torch.inference_mode():
        for name, run in passes.items():
            run()  # warm-up: allocator, first-call paths
            cpu, wall, maps[name] = _timed(run)
            result[name] = {"cpu_s_per_frame": round(cpu / n, 5), "wall_s_per_frame": round(wall / n, 5)}
    result["streaming_vs_offline_cpu"] = round(result["streaming"]["cpu_s_per_frame"]
                                               / result["offline"]["cpu_s_per_frame"], 3)
    result["streaming_vs_offline_wall"] = round(result["streaming"]["wall_s_per_frame"]
                                                / result["offline"]["wall_s_per_frame"], 3)
    result["frame_by_frame_vs_offline_cpu"] = round(result["streaming_frame_by_frame"]["cpu_s_per_frame"]
                                                    / result["offline"]["cpu_s_per_frame"], 3)
    if published:
        ref = maps["published_streaming"]
        result["streaming_vs_published_cpu"] = round(result["streaming"]["cpu_s_per_frame"]
                                                     / result["published_streaming"]["cpu_s_per_frame"], 3)
        result["max_rel_diff_streaming_vs_published"] = float(np.abs(maps["streaming"] - ref).max()
                                                              / np.abs(ref).max())
    return result


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    add_input_size(p, default=70)
    p.add_argument("--frames", type=positive_int, default=40)
    p.add_argument("--height", type=positive_int, default=120)
    p.add_argument("--width", type=positive_int, default=160)
    p.add_argument("--read-ahead", type=positive_int, default=None,
                   help="frames the streaming runner encodes in one batch (default: the runner's)")
    p.add_argument("--published", metavar="DIR", default=os.environ.get("VDA_PUBLISHED_DIR"),
                   help="a checkout of the published repository (default: $VDA_PUBLISHED_DIR; none: no anchor)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the figures here")
    return p


def run_streaming_bench(argv, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    if not os.path.exists(args.checkpoint):
        return errors.fail(prog, f"{args.checkpoint}: no such checkpoint file")

    def body() -> int:
        import numpy as np

        from .. import load_model
        from .infer import synthetic_video

        model = load_model(args.checkpoint, metric=False)
        frames = np.stack(list(synthetic_video(args.frames, args.height, args.width)))
        result = measure_streaming(model, frames, args.input_size, args.published, args.read_ahead)
        print(json.dumps(result, indent=1))
        if args.json:
            from ..io import write_json_atomic

            write_json_atomic(args.json, result)
        return errors.EXIT_OK

    return errors.run_command(prog, body)
