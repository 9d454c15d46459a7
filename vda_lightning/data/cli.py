"""vda shard (alias vda-shard): convert datasets into the shard format (data/README.md), generate synthetic shards,
inspect shards.

  vda shard folders ROOT --out DIR [--dataset NAME --factor F]      ROOT/<seq>/{frames,depth,mask}/...
  vda shard manifest FILE.json|FILE.csv --out DIR
  vda shard benchmark kitti_video.json --out DIR [--datasets kitti]  the published benchmark JSON layout
  vda shard synthetic --out DIR --train-clips 256 --val-clips 16 --clip-len 32
  vda shard inspect DIR_OR_SHARDS...                                 counts, depth ranges, full decode check
  vda shard {vkitti2,tartanair,pointodyssey,irs,spring,dynamic-replica,hypersim} ROOT [--out shards/<name>]
                                                                     a training dataset as distributed

`vda shard NAME --help` explains each one. synthetic and inspect print a short table (--json: the JSON summary);
the others print their JSON summary. Bad input: one line naming the file, exit status 2.

For developers (not shown by --help): subcommands come from one registry, `SUBCOMMANDS`:
`register(name, help, add_arguments, run, table=None)`, where `add_arguments(parser)` declares its options
(`add_shard_options(parser)` adds the shared output options), `run(args) -> dict` does the work and returns the JSON
summary printed on success (`write_sequences(seqs, args)` turns `SequenceSpec`s into shards with the shared
options), and `table(summary, args) -> str`, if given, is printed instead unless `--json` (summary_tables.py).
The training-dataset converters (`converters/`, one `Converter` each) are registered from `converters.CONVERTERS`.
Keep a converter module's top-level imports light (numpy at most: `vda shard --help` imports it). Bad input raises
ValueError (trust.ReadError) or OSError naming the file: one error line, exit 2 (a full disk too: the line names the
shard being written).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..cli import errors
from ..cli.options import HelpFormatter, positive_int
from .format import DEPTH_ENCODINGS, DEPTH_KINDS, FRAME_FORMATS

PROG = "vda-shard"


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]
    description: str | None = None  # `vda shard <name> --help` text (default: help)
    table: Callable[[dict, argparse.Namespace], str] | None = None  # human output; `--json` prints the dict


SUBCOMMANDS: dict[str, Subcommand] = {}


def register(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], dict], description: str | None = None,
             table: Callable[[dict, argparse.Namespace], str] | None = None) -> None:
    """Add `vda shard <name>`; `run(args)` returns the summary printed as JSON (with `table`: printed as
    `table(summary, args)` unless `--json`)."""
    if name in SUBCOMMANDS:
        raise ValueError(f"vda shard {name}: registered twice")
    SUBCOMMANDS[name] = Subcommand(help, add_arguments, run, description, table)


def add_shard_options(p: argparse.ArgumentParser, default_out: str | None = None,
                      plausible: tuple[float, float] | None = None) -> None:
    """The output options every converter shares (read back by `write_sequences`); `plausible`: the converter's
    plausible median depth in metres (default: depth_stats.PLAUSIBLE_METRIC_DEPTH), stated in the help."""
    from .depth_stats import PLAUSIBLE_METRIC_DEPTH

    lo, hi = plausible or PLAUSIBLE_METRIC_DEPTH
    p.add_argument("--out", required=default_out is None, default=default_out, help="output folder for the shards")
    p.add_argument("--allow-depth-range", action="store_true",
                   help=f"write metric depth even if its median is outside {lo:g}-{hi:g} m, or depth whose sampled "
                        "frames have no valid pixel")
    p.add_argument("--prefix", default="train", help="shard name prefix (train, val, image...)")
    p.add_argument("--clip-len", type=int, default=32, help="frames per clip (<= 0: whole sequence)")
    p.add_argument("--stride", type=int, default=None, help="frames between clip starts (default: clip span)")
    p.add_argument("--frame-step", type=int, default=1, help="take every k-th frame")
    p.add_argument("--short-side", type=int, default=0, help="resize so that the short side is this (0: keep)")
    p.add_argument("--images", action="store_true", help="one single-frame image sample per frame")
    p.add_argument("--frame-format", choices=FRAME_FORMATS, default="png", help="how frames are stored")
    p.add_argument("--jpeg-quality", type=int, default=95, help="jpg frames: quality")
    p.add_argument("--depth-encoding", choices=DEPTH_ENCODINGS, default="png16", help="how depth is stored")
    p.add_argument("--depth-scale", type=float, default=None,
                   help="png16: stored = round(depth * scale); default: the finest scale that fits, per clip")
    p.add_argument("--max-samples-per-shard", type=int, default=64, help="samples per shard at most")
    p.add_argument("--max-shard-mb", type=float, default=2048.0, help="shard size at most (MB)")
    p.add_argument("--workers", type=int, default=1, help="parallel shard writers (processes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def shard_options(a: argparse.Namespace):
    """The `ShardOptions` of `add_shard_options`' arguments."""
    from .convert import ShardOptions

    span = (a.clip_len - 1) * a.frame_step + 1 if a.clip_len > 0 else 1
    return ShardOptions(clip_len=1 if a.images else a.clip_len, stride=a.stride or span, frame_step=a.frame_step,
                        short_side=a.short_side, sample_type="image" if a.images else "clip",
                        frame_format=a.frame_format, depth_encoding=a.depth_encoding, depth_scale=a.depth_scale,
                        jpeg_quality=a.jpeg_quality, max_samples_per_shard=a.max_samples_per_shard,
                        max_shard_mb=a.max_shard_mb)


def write_sequences(seqs, a: argparse.Namespace, unit_hint: str | None = "--factor",
                    plausible: tuple[float, float] | None = None, plausible_for: str = "metric depth") -> dict:
    """Sequences -> shards with the shared options; the summary (shard count, samples, ...). `unit_hint`: the flag
    named when the depth units look wrong (the write is refused unless --allow-depth-range); `plausible`: the
    median depth range (metres) of `plausible_for` (default: depth_stats.PLAUSIBLE_METRIC_DEPTH, metric depth)."""
    from .convert import write_shards
    from .depth_stats import PLAUSIBLE_METRIC_DEPTH

    summary = write_shards(seqs, a.out, a.prefix, shard_options(a), a.workers, progress=not a.no_progress,
                           check_units=not a.allow_depth_range, unit_hint=unit_hint,
                           plausible=plausible or PLAUSIBLE_METRIC_DEPTH, plausible_for=plausible_for)
    summary["shards"] = len(summary["shards"])
    return summary


# --------------------------------------------------------------------------------------------- built-in converters

def _folders_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="ROOT/<sequence>/{frames,depth,[mask]}/")
    p.add_argument("--dataset", default=None, help="dataset name stored in the samples (default: ROOT's name)")
    p.add_argument("--factor", type=float, default=1.0, help="depth = stored / factor")
    p.add_argument("--depth-kind", choices=DEPTH_KINDS, default="metric_depth", help="what the depth files hold")
    p.add_argument("--units", default="m", help="depth units")
    add_shard_options(p)


def _folders(a: argparse.Namespace) -> dict:
    from .manifests import read_folders

    return write_sequences(read_folders(a.root, a.dataset, a.factor, a.depth_kind, a.units), a)


def _manifest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="FILE.json or FILE.csv (data/README.md)")
    p.add_argument("--factor", type=float, default=None, help="override the manifest's factor")
    p.add_argument("--depth-kind", choices=DEPTH_KINDS, default=None, help="override the manifest's depth kind")
    p.add_argument("--allow-absolute-paths", action="store_true",
                   help="let the manifest name files outside its own folder (absolute paths, '..'); refused "
                        "otherwise, so that a manifest from elsewhere cannot copy other files into the shards")
    add_shard_options(p)


def _manifest(a: argparse.Namespace) -> dict:
    from .manifests import read_manifest

    return write_sequences(read_manifest(a.manifest, a.factor, a.depth_kind, a.allow_absolute_paths), a)


def _benchmark_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("json", help="<name>_video.json of the published benchmark layout")
    p.add_argument("--datasets", nargs="*", default=None, help="only these datasets of the JSON (default: all)")
    add_shard_options(p)


def _benchmark(a: argparse.Namespace) -> dict:
    from .manifests import read_benchmark_json

    seqs = read_benchmark_json(a.json, a.datasets)
    factors = {s.factor for s in seqs}
    if a.depth_scale is None and a.depth_encoding == "png16" and len(factors) == 1:
        # store the benchmark's own 16-bit values: the decoded GT is then exactly what vda-eval reads
        a.depth_scale = factors.pop()
    return write_sequences(seqs, a, unit_hint="the JSON's factor")


def _synthetic_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--train-clips", type=int, default=256, help="training clips")
    p.add_argument("--val-clips", type=int, default=16, help="validation clips")
    p.add_argument("--images", type=int, default=0, help="single-frame image samples (with pseudo-labels)")
    p.add_argument("--clip-len", type=int, default=32, help="frames per clip")
    p.add_argument("--height", type=int, default=112, help="frame height")
    p.add_argument("--width", type=int, default=154, help="frame width")
    p.add_argument("--clips-per-shard", type=int, default=8, help="clips per shard")
    p.add_argument("--seed", type=int, default=0, help="scene generator seed")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the table")


def _synthetic(a: argparse.Namespace) -> dict:
    from .synthetic_scenes import generate_synthetic_shards

    out = generate_synthetic_shards(a.out, a.train_clips, a.val_clips, a.clip_len, a.height, a.width, a.seed,
                                    a.clips_per_shard, a.images)
    a.shard_paths = out  # for the table
    return {k: len(v) for k, v in out.items()}


def _synthetic_table(summary: dict, a: argparse.Namespace) -> str:
    from .summary_tables import synthetic_table

    clips = {"train": a.train_clips, "val": a.val_clips, "image": a.images}
    return synthetic_table(a.shard_paths, a.clip_len, a.height, a.width, clips, a.out)


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    from .format import MAX_SIDE

    p.add_argument("paths", nargs="+", help="shard files, folders, brace patterns or globs")
    p.add_argument("--max-side", type=positive_int, default=MAX_SIDE,
                   help="samples whose json claims a larger height/width are counted as bad_metadata")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the table")


def _inspect(a: argparse.Namespace) -> dict:
    from .shards import expand_shards

    urls = expand_shards(a.paths, "inspect")  # before the decoders' imports (torch): a missing shard is one quick line
    from .depth_stats import DepthStats
    from .format import decode_members
    from .streams import SkipCounters, decode_stream, indexed_samples, iter_tar_samples

    counters = SkipCounters(1, "inspect")
    kinds, frames, indexed = Counter(), 0, 0
    depth: dict[str, DepthStats] = {}
    geometry: dict[str, Counter] = {}
    decode = lambda raw: decode_members(raw, max_side=a.max_side)  # noqa: E731
    for url in urls:
        indexed += indexed_samples(url) or 0
        for rec in decode_stream(iter_tar_samples(url, counters), decode, counters):
            kinds[rec.depth_kind] += 1
            frames += rec.num_frames
            g = geometry.setdefault(rec.dataset, Counter())
            g["samples"] += 1
            g["with_K"] += rec.K is not None
            g["with_poses"] += rec.poses is not None
            if rec.depth is not None:
                key = rec.dataset if rec.depth_kind == "metric_depth" else f"{rec.dataset} [{rec.depth_kind}]"
                depth.setdefault(key, DepthStats(rec.depth_kind, rec.depth_units)).add(rec.depth, rec.mask)
    if a.json:  # JSON on stdout for scripts, the ranges for the reader on stderr (the table shows them otherwise)
        for key in sorted(depth):
            print(depth[key].describe(key), file=sys.stderr)
    return {"shards": len(urls), "indexed_samples": indexed, "frames": frames, "depth_kinds": dict(kinds),
            "counts": counters.as_dict(), "depth": {k: v.summary() for k, v in depth.items()},
            "geometry": {k: dict(v) for k, v in geometry.items()}}


register("folders", "ROOT/<sequence>/{frames,depth,[mask]}/ (+ K.txt, poses.txt)", _folders_arguments, _folders)
register("manifest", "a JSON or CSV manifest", _manifest_arguments, _manifest)
register("benchmark", "the published benchmark JSON layout", _benchmark_arguments, _benchmark)
register("synthetic", "procedural scenes (the quick-start data)", _synthetic_arguments, _synthetic,
         table=_synthetic_table)
register("inspect", "decode every sample; counts per skip reason, depth range per dataset", _inspect_arguments,
         _inspect, table=lambda summary, a: _inspect_table(summary))


def _inspect_table(summary: dict) -> str:
    from .summary_tables import inspect_table

    return inspect_table(summary)


def _register_converter(conv) -> None:
    """One `converters.Converter` (a training dataset as distributed) as `vda shard <conv.name>`."""

    def add_arguments(p: argparse.ArgumentParser) -> None:
        conv.add_arguments(p)
        add_shard_options(p, conv.default_out, conv.plausible_depth)
        p.set_defaults(**conv.defaults)

    def run(a: argparse.Namespace) -> dict:
        from .converters.base import require_dir

        require_dir(a.root, "dataset")  # one line before a converter's own notices (hypersim's camera file)
        return write_sequences(conv.read_sequences(a), a, unit_hint=conv.unit_hint, plausible=conv.plausible_depth,
                               plausible_for=conv.name)

    register(conv.name, conv.summary, add_arguments, run, description=conv.layout)


def _register_converters() -> None:
    from .converters import CONVERTERS

    for conv in CONVERTERS.values():
        if conv.name not in SUBCOMMANDS:
            _register_converter(conv)


# --------------------------------------------------------------------------------------------- command

def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    _register_converters()
    usage = __doc__.split("\n\n")  # description, the commands, how output works; developer notes are not shown
    ap = argparse.ArgumentParser(prog=prog, description=usage[0], formatter_class=HelpFormatter,
                                 epilog="\n\n".join(usage[1:3]))
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, command in SUBCOMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.description or command.help,
                                             formatter_class=HelpFormatter))
    return ap


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = build_parser(prog).parse_args(argv)

    def run() -> None:
        command = SUBCOMMANDS[a.cmd]
        summary = command.run(a)
        if command.table is None or getattr(a, "json", False):
            print(json.dumps(summary))
        else:
            print(command.table(summary, a))

    return errors.run_command(prog, run, known=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
