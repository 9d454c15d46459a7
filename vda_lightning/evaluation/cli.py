"""vda eval (alias vda-eval): score a model or saved predictions on the published zero-shot video-depth benchmarks.

  vda eval --benchmark kitti,bonn,scannet --benchmark-root DIR --predictions PRED_DIR [--tae] [--output r.json]
  vda eval --benchmark kitti_500,scannet_500 --benchmark-root DIR --checkpoint ckpt.pth [--encoder vitl]
           [--save-predictions DIR] [--devices N]
  vda eval --compare a.json b.json            # the paper-shaped table with δ1 rank
"""
from __future__ import annotations

import argparse
import logging
import sys
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
    positive_int,
    resolve_device,
)
from ..io import rank_world
from .benchmarks import BENCHMARKS, BenchmarkError
from .report import load_results, markdown_table, skipped_frames_note, write_results

log = logging.getLogger("vda_lightning.evaluation")
PROG = "vda-eval"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0], formatter_class=HelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--benchmark", help=f"comma-separated: {', '.join(BENCHMARKS)}")
    p.add_argument("--benchmark-root", type=Path, help="folder holding <name>/<name>_video.json")
    src = p.add_mutually_exclusive_group()
    add_checkpoint(src, required=False, type=Path)
    src.add_argument("--predictions", type=Path, help="per-frame .npy laid out as <dir>/<dataset>/<image>.npy")
    add_encoder(p)
    add_input_size(p)
    add_precision(p, default="fp32", help="inference precision (published benchmarks: fp32)")
    add_device(p, help="inference device for one process (auto: cuda when a GPU is visible, else cpu)")
    p.add_argument("--tae", action="store_true", help="also compute ScanNet TAE (needs K/pose in the JSON)")
    p.add_argument("--save-predictions", type=Path, help="write (and resume from) per-frame .npy predictions")
    p.add_argument("--output", type=Path, default=Path("results.json"), help="results JSON (+ .csv, .md beside it)")
    p.add_argument("--devices", type=positive_int, default=1, help="processes, each scoring whole sequences")
    p.add_argument("--label", help="row name in the table (default: checkpoint or predictions folder name)")
    p.add_argument("--compare", type=Path, nargs="+", metavar="RESULTS_JSON", help="tabulate saved results")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--wandb", action="store_true", help="log the results table and per-sequence metrics to wandb")
    p.add_argument("--wandb-project", default="vda-lightning", help="wandb project")
    p.add_argument("--wandb-group", default=None, help="wandb group")
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
    from vda_lightning import load_model

    from .distributed import device_for_rank
    from .predictions import ModelPredictions

    rank, world = rank_world()
    device = str(device_for_rank() if world > 1 else resolve_device(args.device))
    model = load_model(args.checkpoint, encoder=encoder_or_none(args.encoder)).to(device).eval()
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


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _validate(args, parser)
    return errors.run_command(prog, lambda: _main(args), known=(BenchmarkError, ValueError))


def _main(args) -> int:
    if args.compare:
        runs = {path.stem: load_results(path) for path in args.compare}
        print(markdown_table(runs), end="")
        return errors.EXIT_OK
    from .distributed import init_from_environment, launch

    if init_from_environment():  # launched by torchrun / srun: this process is one rank already
        run(args)
    else:
        launch(run, args.devices, (args,))
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
