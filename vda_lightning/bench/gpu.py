"""`vda bench gpu OUT_DIR` (scripts/gpu_check.sh): the CUDA suite and every benchmark in one run, one JSON + one
Markdown summary in OUT_DIR (by default evaluation/results/gpu/).

On a CUDA machine (profile `gpu`, sized to finish in about five minutes on one H200):
  1. `pytest -m cuda tests/cuda` (parity, fp16/bf16 bars, long video, streaming, training steps, window memory);
  2. `vda bench infer --in-process`: vits and vitl, fp32/fp16/bf16, at 518x518 and at a 16:9 frame (the video's own
     aspect), model alone / runner end to end (decode -> infer -> npz + png16) / threads off / published loop;
  3. the speed levers (none, channels_last, cuda_graphs, compile) on vits fp16, model alone
     and runner, each with its speed-up and max relative output difference;
  4. `vda bench train`: vits and vitl, bf16-mixed, checkpointing off/on, the per-GPU share of the paper's batch on
     8 GPUs (2 clips x 32 frames + 16 images at 518), beside the loader's clips/s with 8 workers;
  5. `vda bench data --augment-on cpu,device --decode-on worker,device`: a worker's clips/s with the augmentation in
     it, only decoding, or (JPEG frames decoded on the device by nvJPEG) only reading the tar and the depth (png16
     and f16lz4), and the device's decode + kornia augmentation clips/s (32 frames stored at 640, cropped to 518).
Without CUDA (profile `cpu`) the same steps run at CPU-feasible sizes (the suite then reports its skips): the
proof that the script works end to end, and the CPU figures beside the GPU ones.

If one device call cannot hold it all, split it: `--steps suite,infer_square`, then
`--steps infer_video_aspect,levers,train,augment` (each call writes its own summary; use two output folders).
Each step is a subprocess; a failing step is recorded (its exit status and last lines) and the others still run.
The exit status is 1 when any step failed or any CUDA test failed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ..cli import errors
from ..cli.options import HelpFormatter
from ..io import write_json_atomic, write_text_atomic

PROG = "vda-bench gpu"
DEFAULT_OUT = "evaluation/results/gpu"

# (name, argv after `python -m vda_lightning.bench`); {out} is the output folder
PROFILES: dict[str, list[tuple[str, list[str]]]] = {
    "gpu": [
        ("infer_square", ["infer", "--device", "cuda", "--in-process", "--encoder", "vits,vitl",
                          "--precision", "fp32,fp16,bf16", "--modes", "model,e2e,e2e-serial,baseline",
                          "--lengths", "96", "--height", "518", "--width", "518", "--iters", "5",
                          "--json", "{out}/infer_square.json"]),
        ("infer_video_aspect", ["infer", "--device", "cuda", "--in-process", "--encoder", "vits,vitl",
                                "--precision", "fp16", "--modes", "model,e2e,baseline", "--lengths", "96",
                                "--height", "540", "--width", "960", "--iters", "5",
                                "--json", "{out}/infer_video_aspect.json"]),
        ("levers", ["infer", "--device", "cuda", "--in-process", "--encoder", "vits", "--precision", "fp16",
                    "--modes", "model,runner", "--lengths", "64", "--iters", "10",
                    "--levers", "none,channels_last,cuda_graphs,compile",
                    "--json", "{out}/levers.json"]),
        ("train", ["train", "--device", "cuda", "--encoder", "vits,vitl", "--precision", "bf16-mixed",
                   "--checkpointing", "off,on", "--gpus", "8", "--frames", "32", "--size", "518", "--steps", "3",
                   "--workers", "8", "--loader-size", "640", "--loader-clips", "2", "--json", "{out}/train.json"]),
        ("augment", ["data", "--augment-on", "cpu,device", "--device", "cuda", "--clips", "4", "--frames", "32",
                     "--size", "640", "--crop", "518", "--frame-format", "jpg", "--decode-on", "worker,device",
                     "--depth-encoding", "png16,f16lz4", "--json", "{out}/augment.json"]),
    ],
    # fp32 only on the CPU: without avx512_bf16/AMX (this 2-core AMD EPYC) bf16 autocast is emulated, ~25x slower
    # than fp32 (one 32x112x112 vits window: ~75 s vs ~3 s); its numerics are checked by tests/test_precision.py.
    "cpu": [
        ("infer_square", ["infer", "--device", "cpu", "--in-process", "--encoder", "vits",
                          "--precision", "fp32", "--modes", "model,runner,e2e,e2e-serial,baseline",
                          "--input-size", "112", "--lengths", "40", "--height", "112", "--width", "112",
                          "--iters", "2", "--json", "{out}/infer_square.json"]),
        ("infer_video_aspect", ["infer", "--device", "cpu", "--in-process", "--encoder", "vits",
                                "--precision", "fp32", "--modes", "model,e2e,baseline", "--input-size", "112",
                                "--lengths", "40", "--height", "108", "--width", "192", "--iters", "2",
                                "--json", "{out}/infer_video_aspect.json"]),
        ("levers", ["infer", "--device", "cpu", "--in-process", "--encoder", "vits", "--precision", "fp32",
                    "--modes", "model,runner", "--input-size", "112", "--lengths", "40", "--height", "112",
                    "--width", "112", "--iters", "3", "--levers", "none,channels_last,compile",
                    "--json", "{out}/levers.json"]),
        ("train", ["train", "--device", "cpu", "--encoder", "vits", "--precision", "32-true",
                   "--checkpointing", "off,on", "--gpus", "8", "--clips", "1", "--images", "2", "--frames", "8",
                   "--size", "112", "--steps", "2", "--workers", "2", "--loader-size", "160", "--loader-clips", "2",
                   "--json", "{out}/train.json"]),
        ("augment", ["data", "--augment-on", "cpu,device", "--device", "cpu", "--clips", "4", "--frames", "8",
                     "--size", "160", "--crop", "112", "--frame-format", "jpg", "--decode-on", "worker,device",
                     "--depth-encoding", "png16,f16lz4", "--json", "{out}/augment.json"]),
    ],
}

PUBLISHED = ("Published anchors (Video Depth Anything README, A100, 1x32x518x518 per frame): VDA-S 9.1 ms fp32 / "
             "7.5 ms fp16, VDA-L 67 ms fp32, 14 ms fp16; window memory VDA-S 7.3 / 6.8 GB, VDA-L 26.7 / 23.6 GB.")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("out", nargs="?", default=DEFAULT_OUT, help="output folder (JSON, Markdown, raw figures)")
    p.add_argument("--profile", choices=("auto", *PROFILES), default="auto",
                   help="auto: gpu when CUDA is visible, else cpu")
    p.add_argument("--steps", default=None,
                   help=f"comma list of steps to run (suite,{','.join(n for n, _ in PROFILES['gpu'])}; default all)")
    p.add_argument("--suite-args", default="", help="extra pytest arguments for the CUDA suite (e.g. '-x')")
    return p


def run_gpu_check(argv, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(list(argv))
    return errors.run_command(prog, lambda: _check(args, prog))


def _run(cmd: list[str], log: Path) -> tuple[int, float, str]:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
    tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
    return proc.returncode, time.perf_counter() - t0, tail


def suite_summary(junit_xml: Path) -> dict:
    """Counts and the failing tests (with their first message line) of a pytest --junitxml report; skips with
    their reasons (counted per reason)."""
    import xml.etree.ElementTree as ET

    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    failures, skips = [], {}
    if not junit_xml.exists():
        return {**counts, "failures": ["no report written"], "skip_reasons": {}}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            counts["failed" if bad.tag == "failure" else "errors"] += 1
            failures.append(f"{name}: {(bad.get('message') or '').splitlines()[0][:300] if bad.get('message') else ''}")
        elif skip is not None:
            counts["skipped"] += 1
            reason = (skip.get("message") or "").strip()
            skips[reason] = skips.get(reason, 0) + 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failures, "skip_reasons": skips}


def _check(args, prog: str) -> int:
    import torch

    from .infer import machine_info

    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    profile = args.profile if args.profile != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")
    wanted = None if not args.steps else {s.strip() for s in args.steps.split(",")}
    report: dict = {"profile": profile, "machine": machine_info(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "steps": {}}
    ok = True
    env_py = [sys.executable]
    if wanted is None or "suite" in wanted:
        xml = out / "cuda_suite.xml"
        # -n 0: one process on the one GPU (the README's suite runs two xdist workers on the CPU)
        cmd = [*env_py, "-m", "pytest", "-n", "0", "-m", "cuda", str(_repo_tests() / "cuda"), "-q", "-rs",
               f"--junitxml={xml}", *args.suite_args.split()]
        print(f"{prog}: CUDA suite: {' '.join(cmd)}", file=sys.stderr, flush=True)
        code, secs, tail = _run(cmd, out / "logs" / "suite.log")
        summary = suite_summary(xml)
        report["steps"]["suite"] = {"command": cmd, "exit": code, "seconds": secs, **summary}
        ok &= code in (0, 5) and summary["failed"] == summary["errors"] == 0  # 5: nothing collected
    for name, template in PROFILES[profile]:
        if wanted is not None and name not in wanted:
            continue
        argv = [a.replace("{out}", str(out)) for a in template]
        cmd = [*env_py, "-m", "vda_lightning.bench", *argv]
        print(f"{prog}: {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        code, secs, tail = _run(cmd, out / "logs" / f"{name}.log")
        step = {"command": cmd, "exit": code, "seconds": secs}
        raw = Path(argv[argv.index("--json") + 1])
        if code == 0 and raw.exists():
            step["results"] = json.loads(raw.read_text())
        else:
            step["tail"] = tail
            ok = False
        report["steps"][name] = step
    report["ok"] = bool(ok)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    write_json_atomic(out / "gpu_check.json", report)
    write_text_atomic(out / "gpu_check.md", markdown(report))
    print(f"{prog}: {'all steps passed' if ok else 'SOME STEPS FAILED'}; summary in {out / 'gpu_check.md'}")
    return 0 if ok else 1


def _repo_tests() -> Path:
    here = Path(__file__).resolve().parents[2] / "tests"
    return here if here.is_dir() else Path("tests")


INFER_COLUMNS = [("mode", "{}"), ("encoder", "{}"), ("precision", "{}"), ("levers", "{}"), ("height", "{}"),
                 ("width", "{}"), ("network", "{}"), ("length", "{}"), ("frames_per_s", "{:.2f}"),
                 ("ms_per_frame", "{:.1f}"), ("frames_per_cpu_s", "{:.2f}"), ("speedup_vs_baseline", "{:.2f}x"),
                 ("e2e_vs_model", "{:.2f}"), ("e2e_vs_e2e_serial", "{:.2f}"),
                 ("e2e_vs_e2e_serial_cpu_time", "{:.2f}"), ("peak_gpu_mib", "{:.0f}"),
                 ("max_rel_diff_runner_vs_baseline", "{:.1e}"), ("max_rel_diff_vs_no_levers", "{:.1e}"),
                 ("first_call_s", "{:.1f}")]
TRAIN_COLUMNS = [("encoder", "{}"), ("precision", "{}"), ("checkpointing", "{}"), ("clips", "{}"), ("images", "{}"),
                 ("frames", "{}"), ("size", "{}"), ("step_s", "{:.3f}"), ("step_cpu_s", "{:.3f}"),
                 ("clips_per_s", "{:.3f}"), ("images_per_s", "{:.2f}"), ("peak_gpu_mib", "{:.0f}"),
                 ("loader_clips_per_s", "{:.3f}"), ("bottleneck", "{}")]

AUGMENT_COLUMNS = [("name", "{}"), ("augment_on", "{}"), ("decode_on", "{}"), ("clip_len", "{}"), ("crop", "{}"),
                   ("clips", "{}"),
                   ("clips_per_s", "{:.3f}"), ("clips_per_cpu_s", "{:.3f}"), ("MB_per_clip", "{:.1f}"),
                   ("device", "{}"), ("device_clips_per_s", "{:.2f}")]


def md_table(rows: list[dict], columns) -> list[str]:
    cols = [(c, f) for c, f in columns if any(r.get(c) is not None for r in rows)]
    if not cols:
        return []
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [(f.format(r[c]) if not isinstance(r[c], list) else "x".join(map(str, r[c])))
                 if r.get(c) is not None else "-" for c, f in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report: dict) -> str:
    m = report["machine"]
    where = m.get("gpu") or f"CPU only ({m['cpus']} cores; load average at end {m['load_avg_at_end'][0]:.1f})"
    lines = [f"# GPU check ({report['profile']} profile)", "",
             f"{report['started']} - {report['finished']}; {where}; torch {m['torch']}, python {m['python']}.", ""]
    if report["profile"] == "cpu":
        lines += ["**No CUDA device here: this is the CPU variant (CPU-feasible sizes, the CUDA suite skipped). "
                  "The GPU figures are still to be taken** with `scripts/gpu_check.sh OUT_DIR` on a CUDA machine. "
                  "fp32 only: "
                  "bf16 autocast is emulated on a CPU without avx512_bf16/AMX (its numerics: tests/test_precision.py).",
                  ""]
    lines += [f"Overall: {'all steps passed' if report['ok'] else 'SOME STEPS FAILED'}.", ""]
    suite = report["steps"].get("suite")
    if suite:
        lines += ["## CUDA suite (`pytest -m cuda tests/cuda`)", "",
                  f"passed {suite['passed']}, failed {suite['failed']}, errors {suite['errors']}, skipped "
                  f"{suite['skipped']} (exit {suite['exit']}, {suite['seconds']:.0f} s)", ""]
        lines += [f"- FAILED {f}" for f in suite["failures"]]
        lines += [f"- skipped x{n}: {reason}" for reason, n in suite["skip_reasons"].items()]
        lines.append("")
    titles = {"infer_square": "Inference, square frames", "infer_video_aspect": "Inference, a 16:9 video's own aspect",
              "levers": "Speed levers (speed-up = frames/s vs `none`; output difference vs `none`)",
              "train": "Training steps vs the loader",
              "augment": "Augmentation in the workers (cpu) or on the device (kornia)"}
    for name, step in report["steps"].items():
        if name == "suite":
            continue
        lines += [f"## {titles.get(name, name)}", "", f"`python -m vda_lightning.bench {' '.join(step['command'][3:])}`"
                  f" (exit {step['exit']}, {step['seconds']:.0f} s)", ""]
        if "results" not in step:
            lines += ["```", step.get("tail", "").rstrip(), "```", ""]
            continue
        res = step["results"]
        if name == "augment":
            lines += md_table(res["per_worker"], AUGMENT_COLUMNS)
            lines += ["", "clips_per_s: one worker (one thread) reading, decoding and (cpu) augmenting; "
                      "device_clips_per_s: the device augmentation of one stored clip per call."]
        elif name == "train":
            lines += md_table(res["results"], TRAIN_COLUMNS)
            if res.get("loader"):
                ld = res["loader"]
                lines += ["", f"Loader: {ld['per_worker_clips_per_s']:.3f} clips/s per worker (clips of {ld['frames']}"
                          f" frames stored at {ld['stored_size']}^2, cropped to {ld['crop']}) x {ld['workers_counted']}"
                          f" workers = {ld['loader_clips_per_s']:.3f} clips/s (estimate: workers assumed to scale)."]
        else:
            rows = res["results"]
            if name == "levers":
                _lever_speedups(rows)
                cols = [*INFER_COLUMNS[:4], ("frames_per_s", "{:.2f}"), ("speedup_vs_none", "{:.2f}x"),
                        ("max_rel_diff_vs_no_levers", "{:.1e}"), ("first_call_s", "{:.1f}")]
                lines += md_table(rows, [("mode", "{}"), *cols[1:]])
                lines += ["", "Runner rows with `compile` include the compilation of each new window shape (the "
                          "encoder sees 32 new frames, then 22 or fewer); `first_call_s` (model rows) is the first "
                          "window's time, compilation or graph capture included."]
            else:
                lines += md_table(rows, INFER_COLUMNS)
        lines.append("")
    lines += [PUBLISHED, ""]
    return "\n".join(lines)


def _lever_speedups(rows: list[dict]) -> None:
    plain = {(r["mode"], r["encoder"], r["precision"]): r for r in rows if r["levers"] == "none"}
    for r in rows:
        base = plain.get((r["mode"], r["encoder"], r["precision"]))
        if base:
            r["speedup_vs_none"] = r["frames_per_s"] / base["frames_per_s"]
