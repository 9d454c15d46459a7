"""vda eval (alias vda-eval): score a model or saved predictions on the published zero-shot video-depth benchmarks.

  vda eval --benchmark kitti,bonn,scannet --benchmark-root DIR --predictions PRED_DIR [--tae] [--output r.json]
  vda eval --benchmark kitti_500,scannet_500 --benchmark-root DIR --checkpoint ckpt.pth [--encoder vitl]
           [--save-predictions DIR] [--devices N]
  vda eval --benchmark kitti,nyuv2_500 --benchmark-root DIR --checkpoint metric.pth --alignment none
  vda eval --compare a/results.json b/results.json [--labels A,B]   # the paper-shaped table with δ1 rank
    (rows are named by the label stored in each results file, or by --labels; two rows may not share a name)

Alignment (`--alignment`): scale_shift = the published relative protocol (least-squares scale and shift in
disparity per sequence); scale = one median scale per sequence on metric depth; none = metric depth in metres as
predicted. Saved predictions are read as disparity under scale_shift and as metric depth under scale / none
unless --prediction-kind says otherwise; a checkpoint's predictions are what the model predicts (metric depth for
a metric model: --metric / --relative override what the file says).

Units: `--alignment none` scores predictions as metres. A checkpoint whose kind is relative (its metadata, its
name, --relative, or a probe that could not tell) is refused under it in one line (its disparity would be scored
as metres) unless --prediction-kind says what its output holds. Saved predictions whose scale is implausible for
metres get a one-line warning per sequence naming the likely unit (`sequences.unit_warning`: median predicted /
true depth outside [1/20, 20]).
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
    add_model_kind,
    add_precision,
    encoder_or_none,
    positive_int,
    resolve_device,
)
from ..io import rank_world
from ..io.benchmarks import BENCHMARKS, BenchmarkError
from ..trust import display
from .alignment import ALIGNMENTS, PREDICTION_KINDS
from .cut3r_splits import CUT3R_SPLITS, DEFAULT_ALIGNMENT, PROTOCOLS
from .report import extras_table, load_results, markdown_table, protocol_of, skipped_frames_note, write_results

log = logging.getLogger("vda_lightning.evaluation")
PROG = "vda-eval"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0], formatter_class=HelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--benchmark", help=f"comma-separated: {', '.join(BENCHMARKS)} (--protocol cut3r: "
                                       f"{', '.join(CUT3R_SPLITS)})")
    p.add_argument("--protocol", choices=PROTOCOLS, default="vda",
                   help="vda: the published VDA protocol; cut3r: the CUT3R family's (its splits, depth-space "
                        "alignment, bicubic resize, valid-pixel-weighted means; evaluation/README.md)")
    p.add_argument("--benchmark-root", type=Path, help="folder holding <name>/<name>_video.json")
    src = p.add_mutually_exclusive_group()
    add_checkpoint(src, required=False)  # a str: hf://ORG/REPO names would lose a slash as Paths
    src.add_argument("--predictions", type=Path,
                     help="saved predictions of any model, any resolution: per frame .npy/.npz/.png (16-bit)/.exr "
                          "at <dir>/<dataset>/<image path>, or per sequence <dir>[/<dataset>]/<sequence>.npz (T,H,W) "
                          "or <dir>[/<dataset>]/<sequence>/ (files in frame order); --prediction-kind says what "
                          "they hold")
    add_encoder(p)
    add_model_kind(p)
    add_input_size(p)
    add_precision(p, default="fp32", help="inference precision (published benchmarks: fp32)")
    p.add_argument("--alignment", choices=ALIGNMENTS, default=None,
                   help="vda protocol (default scale_shift): scale_shift = the published relative protocol; scale = "
                        "one median scale per sequence; none = metric depth as predicted. cut3r protocol (default "
                        "scale): its scale&shift, scale and metric")
    p.add_argument("--prediction-kind", choices=PREDICTION_KINDS, default=None,
                   help="what the predictions hold (default: vda protocol disparity under scale_shift, depth under "
                        "scale/none; cut3r protocol depth; a checkpoint: what the model predicts)")
    add_device(p, help="inference device for one process (auto: cuda when a GPU is visible, else cpu)")
    p.add_argument("--tae", action="store_true", help="also compute ScanNet TAE (needs K/pose in the JSON)")
    p.add_argument("--metrics", default="", metavar="+NAME[,+NAME]",
                   help="optional metrics added to the published ones: +boundary_f1 (Depth Pro's scale-invariant "
                        "boundary F1), +drift (frame- vs sequence-aligned AbsRel, AbsRel of the first/last quarter)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write an HTML report (tables, charts, example frames) with PNG charts into DIR")
    p.add_argument("--save-predictions", type=Path, help="write (and resume from) per-frame .npy predictions")
    p.add_argument("--output", type=Path, default=Path("results.json"), help="results JSON (+ .csv, .md beside it)")
    p.add_argument("--devices", type=positive_int, default=1, help="processes, each scoring whole sequences")
    p.add_argument("--label", help="row name in the table (default: checkpoint or predictions folder name)")
    p.add_argument("--compare", type=Path, nargs="+", metavar="RESULTS_JSON", help="tabulate saved results")
    p.add_argument("--labels", help="with --compare: comma list of row names, one per results file "
                                    "(default: the label stored in each file)")
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
    return Path(source).stem if args.checkpoint else Path(source).resolve().name


def _source(args):
    """(prediction source, what its predictions hold or None for the alignment's default)."""
    if args.predictions is not None:
        from .predictions import NpyPredictions

        return NpyPredictions(args.predictions), args.prediction_kind
    from vda_lightning.checkpoints import resolve_kind
    from vda_lightning.cli.options import load_model_kind

    from .distributed import device_for_rank
    from .predictions import ModelPredictions

    rank, world = rank_world()
    device = str(device_for_rank() if world > 1 else resolve_device(args.device))
    # expect="video": a Depth Anything V2 image checkpoint is refused, as vda infer does (it would be scored as
    # a video model whose temporal modules were never trained); a DAv2 *metric* file loads as a metric video model
    # --metric/--relative stand in for a file that says nothing; against its metadata they are refused (as vda infer)
    model = load_model_kind(args.checkpoint, encoder_or_none(args.encoder), args.metric, expect="video").eval()
    model, kind_line = resolve_kind(model.to(device), device)
    if rank == 0:
        log.info("%s: %s", args.checkpoint, kind_line)
    check_units(args.checkpoint, args.alignment, bool(model.config.metric), kind_line, args.prediction_kind)
    kind = args.prediction_kind or ("depth" if model.config.metric else "disparity")
    return ModelPredictions(model, input_size=args.input_size, device=device, precision=args.precision,
                            save_dir=args.save_predictions, checkpoint=args.checkpoint), kind


def check_units(checkpoint, alignment: str, metric: bool, kind_line: str, prediction_kind: str | None = None) -> None:
    """`--alignment none` scores metres: a relative model's output (disparity of unknown scale and shift) is
    refused under it, in one line that says where its kind came from and what to do. An explicit
    `--prediction-kind` is the user saying what the output holds (e.g. a relative model's disparity inverted and
    scored as metres on purpose, as a baseline): then it runs."""
    if alignment == "none" and not metric and prediction_kind is None:
        raise BenchmarkError(f"{display(checkpoint)}: {kind_line}; --alignment none would score its relative "
                             "disparity as metres: use --alignment scale_shift (the published protocol), --metric if "
                             "it predicts metres, or --prediction-kind disparity to score its inverse as metres anyway")


def run(args) -> dict:
    """The evaluation on this process (one rank of many, or alone); rank 0 prints and writes the outputs."""
    from .runner import evaluate

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    source, kind = _source(args)
    if args.protocol == "cut3r":
        from .cut3r_runner import evaluate_cut3r

        results = evaluate_cut3r(args.benchmark_root, args.benchmark_list, source, progress=not args.no_progress,
                                 alignment=args.alignment, prediction_kind=kind)
    else:
        results = evaluate(args.benchmark_root, args.benchmark_list, source, tae=args.tae,
                           progress=not args.no_progress, alignment=args.alignment, prediction_kind=kind,
                           metrics=args.metric_names)
    rank, world = rank_world()
    results["meta"] = {"label": _label(args), "benchmark_root": str(args.benchmark_root), "processes": world,
                       "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                       "predictions": str(args.predictions) if args.predictions else None,
                       "input_size": args.input_size if args.checkpoint else None,
                       "protocol": results["protocol"], "alignment": results["alignment"],
                       "prediction_kind": results["prediction_kind"]}
    if rank == 0:
        label = _label(args)
        print(markdown_table({label: results}) + extras_table({label: results}), end="")
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
        if args.report is not None:
            from vda_lightning.dashboards.html_report import write_report

            print(f"wrote {write_report(args.report, {label: results}, source)}")
    return results


def _metric_names(text: str, parser) -> list[str]:
    """`+boundary_f1,+drift` -> ["boundary_f1", "drift"] (a name without + means the same); unknown ones refused."""
    names = [x.strip().lstrip("+") for x in text.split(",") if x.strip()]
    if not names:
        return []
    from .metrics import EXTRA_METRICS

    unknown = [n for n in names if n not in EXTRA_METRICS]
    if unknown:
        parser.error(f"unknown metric(s) {', '.join(unknown)} in --metrics; known: "
                     f"{', '.join('+' + n for n in EXTRA_METRICS)}")
    return list(dict.fromkeys(names))


def _validate(args, parser) -> None:
    if args.compare:
        return
    args.metric_names = _metric_names(args.metrics, parser)
    if not args.benchmark or args.benchmark_root is None:
        parser.error("--benchmark and --benchmark-root are required (or use --compare)")
    if args.checkpoint is None and args.predictions is None:
        parser.error("one of --checkpoint or --predictions is required")
    args.benchmark_list = [b.strip() for b in args.benchmark.split(",") if b.strip()]
    known = CUT3R_SPLITS if args.protocol == "cut3r" else BENCHMARKS
    unknown = [b for b in args.benchmark_list if b not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)} for --protocol {args.protocol}; known: "
                     f"{', '.join(known)}")
    if args.protocol == "cut3r" and (args.tae or args.metric_names):
        parser.error("--tae and --metrics belong to the vda protocol (ScanNet TAE, per-sequence extras of its "
                     "alignment); the cut3r protocol has its own metric set")
    args.alignment = args.alignment or DEFAULT_ALIGNMENT[args.protocol]


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _validate(args, parser)
    from ..checkpoints.read import CheckpointError

    def body() -> int:
        check_inputs(args)  # torch-free: a missing folder or a bad checkpoint is one line in well under a second
        return _main(args)

    return errors.run_command(prog, body, known=(BenchmarkError, CheckpointError, ValueError))


def check_inputs(args) -> None:
    """What `vda eval` can refuse before torch is imported or a model loaded (issue 28, checks before weight), in
    the order the run meets them: the predictions folder (`NpyPredictions`' own check) or the checkpoint
    (`cli.preflight.checked_weights`; a Hub name is the load's), `--metric`/`--relative` against the kind its
    metadata records, `--alignment none` for a model whose kind is known relative without a probe (`check_units`,
    the line the load would give); then the benchmark root and each benchmark's index file
    (`io.benchmarks.check_root`, `check_index`)."""
    if args.compare:
        return
    if args.predictions is not None:
        from .predictions import NpyPredictions

        NpyPredictions(args.predictions)
    else:
        check_checkpoint(args)
    from ..io.benchmarks import check_index, check_root
    from .cut3r_splits import get_split

    check_root(args.benchmark_root)
    for name in args.benchmark_list:
        spec = get_split(name) if args.protocol == "cut3r" else BENCHMARKS[name]
        check_index(Path(args.benchmark_root) / spec.dataset / spec.json_name)


def check_checkpoint(args) -> None:
    """`check_inputs`' checkpoint part: the file, then what its record (or a published name) says of its kind."""
    from ..checkpoints.hub import PUBLISHED_MODELS
    from ..checkpoints.peek import SOURCES, peek_kind
    from ..cli.options import metadata_refusal
    from ..cli.preflight import checked_weights

    path = checked_weights(str(args.checkpoint))
    if path is None:
        known = PUBLISHED_MODELS.get(str(args.checkpoint))
        named = known is not None and known.layout == "published"  # its file name says the kind, as for run.py's
        hint_metric, hint_source = (known.kind == "metric", "name") if named else (None, "none")
    else:
        hint = peek_kind(path)
        hint_metric, hint_source = hint.metric, hint.source
        if args.metric is not None and hint_source == "metadata" and hint_metric != args.metric:
            raise metadata_refusal(args.checkpoint, hint_metric, args.metric)
    metric, source = (args.metric, "argument") if args.metric is not None else (hint_metric, hint_source)
    if metric is not None and source != "none":  # known without the probe: the load would say the same
        kind = "metric depth" if metric else "relative disparity"
        check_units(args.checkpoint, args.alignment, metric, f"{kind} model (from {SOURCES[source]})",
                    args.prediction_kind)


def compare_rows(paths: list[Path], labels: str | None = None) -> dict[str, dict]:
    """Results files -> {row name: results}, named by `labels` (comma list) or the label stored in each file
    (`meta.label`, else the file's folder/stem); a name used twice is an error naming both files."""
    results = [load_results(path) for path in paths]
    if labels is not None:
        names = [x.strip() for x in labels.split(",")]
        if len(names) != len(paths):
            raise errors.CommandError(f"--labels names {len(names)} rows for {len(paths)} results files")
    else:
        names = [(r.get("meta") or {}).get("label") or f"{p.parent.name}/{p.stem}" for p, r in zip(paths, results)]
    rows: dict[str, dict] = {}
    first: dict[str, Path] = {}
    for name, path, r in zip(names, paths, results):
        if name in rows:
            raise errors.CommandError(f"{path}: its row name {name!r} is also that of {first[name]}; "
                                      "name the rows with --labels A,B,...")
        rows[name], first[name] = r, path
    check_one_protocol(dict(zip(paths, results)))
    return rows


def check_one_protocol(results: dict[Path, dict]) -> None:
    """Results of different protocols are never tabulated together: one line naming a file of each."""
    by_protocol: dict[str, Path] = {}
    for path, r in results.items():
        by_protocol.setdefault(protocol_of(r), path)
    if len(by_protocol) > 1:
        said = " but ".join(f"{display(path)} was scored under the {name} protocol"
                            for name, path in by_protocol.items())
        raise errors.CommandError(f"--compare: {said}; their numbers are not comparable (different splits, "
                                  "alignment and averaging): compare results of one --protocol")


def _main(args) -> int:
    if args.compare:
        rows = compare_rows(args.compare, args.labels)
        print(markdown_table(rows) + extras_table(rows), end="")
        if args.report is not None:
            from vda_lightning.dashboards.html_report import write_report

            print(f"wrote {write_report(args.report, rows)}")
        return errors.EXIT_OK
    from .distributed import init_from_environment, launch

    if init_from_environment():  # launched by torchrun / srun: this process is one rank already
        run(args)
    else:
        launch(run, args.devices, (args,))
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
