"""vda-eval: score a model or saved predictions on the published zero-shot video-depth benchmarks.

  vda-eval --benchmark kitti,bonn,scannet --benchmark-root DIR --predictions PRED_DIR [--tae] [--output r.json]
  vda-eval --benchmark kitti_500,scannet_500 --benchmark-root DIR --checkpoint ckpt.pth [--encoder vitl]
           [--save-predictions DIR] [--devices N]
  vda-eval --compare a.json b.json            # the paper-shaped table with δ1 rank
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..io import rank_world
from .benchmarks import BENCHMARKS, BenchmarkError
from .distributed import init_from_environment, launch
from .report import load_results, markdown_table, skipped_frames_note, write_results

log = logging.getLogger("vda_lightning.evaluation")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vda-eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--benchmark", help=f"comma-separated: {', '.join(BENCHMARKS)}")
    p.add_argument("--benchmark-root", type=Path, help="folder holding <name>/<name>_video.json")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="model weights (published .pth, safetensors, Lightning ckpt)")
    src.add_argument("--predictions", type=Path, help="per-frame .npy laid out as <dir>/<dataset>/<image>.npy")
    p.add_argument("--encoder", choices=["vits", "vitb", "vitl", "vitt"],
                   help="encoder size when the file does not say")
    p.add_argument("--input-size", type=int, default=518, help="inference input size (published: 518)")
    p.add_argument("--precision", default="fp32", help="inference precision (published benchmarks: fp32)")
    p.add_argument("--device", default="auto", help="inference device for one process: auto, cpu, cuda")
    p.add_argument("--tae", action="store_true", help="also compute ScanNet TAE (needs K/pose in the JSON)")
    p.add_argument("--save-predictions", type=Path, help="write (and resume from) per-frame .npy predictions")
    p.add_argument("--output", type=Path, default=Path("results.json"), help="results JSON (+ .csv, .md beside it)")
    p.add_argument("--devices", type=int, default=1, help="processes, each scoring whole sequences")
    p.add_argument("--label", help="row name in the table (default: checkpoint or predictions folder name)")
    p.add_argument("--compare", type=Path, nargs="+", metavar="RESULTS_JSON", help="tabulate saved results")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--wandb", action="store_true", help="log the results table and per-sequence metrics to wandb")
    p.add_argument("--wandb-project", default="vda-lightning")
    p.add_argument("--wandb-group", default=None)
    p.add_argument("--wandb-mode", default="auto", choices=["auto", "online", "offline", "disabled"],
                   help="auto: offline unless credentials and network are available (WANDB_MODE wins)")
    return p


def _label(args) -> str:
    if args.label:
        return args.label
    source = args.checkpoint or args.predictions
    return source.stem if args.checkpoint else source.resolve().name


def _source(args):
    if args.predictions is not None:
        from .predictions import NpyPredictions

        return NpyPredictions(args.predictions)
    import torch

    from vda_lightning import load_model

    from .distributed import device_for_rank
    from .predictions import ModelPredictions

    rank, world = rank_world()
    if world > 1:
        device = str(device_for_rank())
    else:
        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model = load_model(args.checkpoint, encoder=args.encoder).to(device).eval()
    return ModelPredictions(model, input_size=args.input_size, device=device, precision=args.precision,
                            save_dir=args.save_predictions)


def run(args) -> dict:
    """The evaluation on this process (one rank of many, or alone); rank 0 prints and writes the outputs."""
    from .runner import evaluate

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = evaluate(args.benchmark_root, args.benchmark_list, _source(args), tae=args.tae,
                       progress=not args.no_progress)
    rank, world = rank_world()
    results["meta"] = {"label": _label(args), "benchmark_root": str(args.benchmark_root), "processes": world,
                       "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                       "predictions": str(args.predictions) if args.predictions else None,
                       "input_size": args.input_size if args.checkpoint else None}
    if rank == 0:
        label = _label(args)
        print(markdown_table({label: results}), end="")
        note = skipped_frames_note(results)
        if note:
            print(note)
        for path in write_results(results, args.output, label):
            print(f"wrote {path}")
        if args.wandb:
            from vda_lightning.dashboards.eval_report import log_eval_results

            run_dir = log_eval_results(results, label=label, project=args.wandb_project, group=args.wandb_group,
                             mode=args.wandb_mode, save_dir=str(args.output.parent),
                             markdown=args.output.with_suffix(".md").read_text())
            if run_dir is not None:
                print(f"wandb run: {run_dir}")
    return results


def _validate(args, parser) -> None:
    if args.compare:
        return
    if not args.benchmark or args.benchmark_root is None:
        parser.error("--benchmark and --benchmark-root are required (or use --compare)")
    if args.checkpoint is None and args.predictions is None:
        parser.error("one of --checkpoint or --predictions is required")
    args.benchmark_list = [b.strip() for b in args.benchmark.split(",") if b.strip()]
    unknown = [b for b in args.benchmark_list if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if args.devices < 1:
        parser.error("--devices must be ≥ 1")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(args, parser)
    try:
        if args.compare:
            runs = {path.stem: load_results(path) for path in args.compare}
            print(markdown_table(runs), end="")
            return 0
        if init_from_environment():  # launched by torchrun / srun: this process is one rank already
            run(args)
        else:
            launch(run, args.devices, (args,))
    except (BenchmarkError, ValueError, FileNotFoundError) as e:
        print(f"vda-eval: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
