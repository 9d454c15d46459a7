"""Measured parity, export cost and graph speed of the ONNX export on CPU onnxruntime, against the published code's
golden outputs (the figures of docs/deploy.md).

    python evaluation/scripts/deploy_parity.py [--golden ../shared/golden] [--threads 2] [--dynamo]
        [--out evaluation/results/deploy_parity_cpu.json]

Exports the golden random-weight vits model (whole model, encoder + head, streaming step, and the whole model in
fp16; with --dynamo also through torch's dynamo exporter), then reports max |onnx - published| / max |published|
per golden case, the encoder features of case a, the long video through OfflineRunner, the 60-frame streaming case
through StreamingRunner, and the median time of one forward per golden case in PyTorch and in onnxruntime.
fp16 on CPU onnxruntime: nodes without a float16 CPU kernel run in float32 between inserted casts, so the figure
reflects fp16 weights and fp16 rounding at those boundaries; `fp16_policy_in_pytorch_cpu_autocast` runs the same
policy (fp32 norms and tail) with fp16 arithmetic in PyTorch, closer to what a GPU does.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def rel(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(out - ref).max() / np.abs(ref).max())


def median_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--golden", default=str(ROOT.parent / "shared" / "golden"))
    p.add_argument("--out", default=str(ROOT / "evaluation" / "results" / "deploy_parity_cpu.json"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dynamo", action="store_true", help="also export the whole model with the dynamo exporter")
    args = p.parse_args()

    import torch
    from safetensors.torch import load_file

    from vda_lightning import load_model
    from vda_lightning.deploy.graphs import VideoGraph, export_mode
    from vda_lightning.deploy.onnx_export import export_onnx
    from vda_lightning.deploy.ort_backend import OnnxRuntimeModel
    from vda_lightning.deploy.sidecar import read_sidecar
    from vda_lightning.inference import OfflineRunner, StreamingRunner
    from vda_lightning.io import write_json_atomic

    torch.set_num_threads(args.threads)
    golden = Path(args.golden)
    ckpt = golden / "vda_vits_random.safetensors"
    model = load_model(ckpt, encoder="vits", expect="video")
    cases = {k: v.numpy() for k, v in load_file(str(golden / "forward_cases.safetensors")).items()}
    long_case = np.load(golden / "long_video_case.npz")
    stream_case = np.load(golden / "streaming_case.npz")
    report: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                                "python": platform.python_version()}}
    quiet = lambda _m: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="vda-deploy-") as tmp:
        tmp = Path(tmp)
        export_onnx(model, tmp / "fp32" / "model.onnx", parts=True, streaming=True, source=ckpt, log=quiet)
        export_onnx(model, tmp / "fp16" / "model.onnx", fp16=True, source=ckpt, log=quiet)
        exports = {}
        for folder, names in (("fp32", ("model", "encoder", "head", "streaming")), ("fp16", ("model",))):
            for name in names:
                path = tmp / folder / f"{name}.onnx"
                side = read_sidecar(path)
                exports[f"{folder}/{name}.onnx"] = {
                    "exporter": side["exporter"], "opset": side["opset"], "seconds": side["export_seconds"],
                    "mib": round(path.stat().st_size / 2**20, 1),
                    "check_max_rel_diff": max(c["max_rel_diff"] for c in side["export_check"])}
        if args.dynamo:
            export_onnx(model, tmp / "dynamo" / "model.onnx", exporter="dynamo", source=ckpt, log=quiet)
            side = read_sidecar(tmp / "dynamo" / "model.onnx")
            exports["dynamo/model.onnx"] = {"exporter": "dynamo", "opset": side["opset"],
                                            "seconds": side["export_seconds"],
                                            "check_max_rel_diff": max(c["max_rel_diff"] for c in side["export_check"])}
        report["exports"] = exports
        report["versions"] = read_sidecar(tmp / "fp32" / "model.onnx")["versions"]

        torch_seconds, torch_fp16 = {}, {}  # PyTorch first, with no onnxruntime session alive in the process
        graph16 = VideoGraph(model, fp16=True)
        with torch.inference_mode():
            for case in "abc":
                xt = torch.from_numpy(cases[f"{case}.input"])
                model(xt)  # warm-up
                torch_seconds[case] = median_seconds(lambda xt=xt: model(xt))
                with export_mode(model, fp16=True):  # the fp16 graph's policy with fp16 arithmetic throughout
                    torch_fp16[case] = rel(graph16(xt).numpy(), cases[f"{case}.output"])
        whole = OnnxRuntimeModel(tmp / "fp32" / "model.onnx", "video", "cpu", args.threads)
        half = OnnxRuntimeModel(tmp / "fp16" / "model.onnx", "video", "cpu", args.threads)
        extra = {}
        if args.dynamo:
            extra["dynamo"] = OnnxRuntimeModel(tmp / "dynamo" / "model.onnx", "video", "cpu", args.threads)
        forward, speed = {}, {}
        for case in "abc":
            x, ref = cases[f"{case}.input"], cases[f"{case}.output"]
            out32, out16 = whole(x), half(x)
            row = {"shape": list(x.shape), "fp32": rel(out32, ref), "fp16_vs_published": rel(out16, ref),
                   "fp16_vs_fp32_onnx": rel(out16, out32), "fp16_finite": bool(np.isfinite(out16).all()),
                   "fp16_policy_in_pytorch_cpu_autocast": torch_fp16[case]}
            for name, m in extra.items():
                row[name] = rel(m(x), ref)
            forward[case] = row
            t_ort = median_seconds(lambda x=x: whole(x))
            t_half = median_seconds(lambda x=x: half(x))
            frames = x.shape[0] * x.shape[1]
            speed[case] = {"frames": frames, "pytorch_s": torch_seconds[case], "onnxruntime_s": t_ort,
                           "onnxruntime_fp16_s": t_half, "onnxruntime_speedup": torch_seconds[case] / t_ort}
        report["whole_model"], report["forward_seconds"] = forward, speed

        parts = OnnxRuntimeModel(tmp / "fp32", "offline", "cpu", args.threads)
        feats = parts.forward_features(torch.from_numpy(cases["a.input"][0]))
        report["encoder_case_a"] = {
            f"{kind}_{i}": rel(t if kind == "tokens" else c, cases[f"a.encoder.{i}.{kind}"])
            for i, (t, c) in enumerate(feats) for kind in ("tokens", "cls")}
        golden_feats = [(torch.from_numpy(cases[f"a.encoder.{i}.tokens"]), None) for i in range(4)]
        report["head_case_a_on_published_features"] = rel(parts.forward_depth(golden_feats, 126, 168, 1, 5)[0],
                                                          cases["a.output"])
        start = time.perf_counter()
        runner = OfflineRunner(parts, input_size=int(long_case["input_size"]))
        out = np.stack(list(runner.run(iter(long_case["frames"]))))
        report["long_video"] = {"frames": len(out), "max_rel_diff": rel(out, long_case["depths"]),
                                "seconds": time.perf_counter() - start, "windows": runner.windows_run,
                                "encoder_frame_passes": runner.frames_encoded}
        stream = OnnxRuntimeModel(tmp / "fp32", "streaming", "cpu", args.threads)
        n = int(stream_case["n_frames"])
        start = time.perf_counter()
        out = np.stack(list(StreamingRunner(stream, input_size=int(stream_case["input_size"])).run(
            iter(long_case["frames"][:n]))))
        report["streaming"] = {"frames": n, "max_rel_diff": rel(out, stream_case["depths"]),
                               "seconds": time.perf_counter() - start}
    write_json_atomic(args.out, report)
    print(f"deploy parity written to {args.out}")
    for case, row in report["whole_model"].items():
        print(f"  case {case} {row['shape']}: fp32 {row['fp32']:.1e}, fp16 {row['fp16_vs_published']:.1e}")
    print(f"  encoder case a: {max(report['encoder_case_a'].values()):.1e}; long video "
          f"{report['long_video']['max_rel_diff']:.1e}; streaming {report['streaming']['max_rel_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
