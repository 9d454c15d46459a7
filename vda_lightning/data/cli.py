"""vda-shard: convert datasets into the shard format (data/README.md), generate synthetic shards, inspect shards.

  vda-shard folders ROOT --out DIR [--dataset NAME --factor F]      ROOT/<seq>/{frames,depth,mask}/...
  vda-shard manifest FILE.json|FILE.csv --out DIR
  vda-shard benchmark kitti_video.json --out DIR [--datasets kitti]  the published benchmark JSON layout
  vda-shard synthetic --out DIR --train-clips 256 --val-clips 16 --clip-len 32
  vda-shard inspect DIR_OR_SHARDS...                                 counts, depth ranges, full decode check
  vda-shard {vkitti2,tartanair,pointodyssey,irs,spring,dynamic-replica,hypersim} ROOT [--out shards/<name>]
                                                                     a training dataset as distributed
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from .convert import ShardOptions, write_shards
from .converters import CONVERTERS
from .format import DEPTH_KINDS, SampleError, decode_members
from .manifests import read_benchmark_json, read_folders, read_manifest


def _common(p: argparse.ArgumentParser, default_out: str | None = None) -> None:
    p.add_argument("--out", required=default_out is None, default=default_out,
                   help="output folder for the shards" + (f" (default: {default_out})" if default_out else ""))
    p.add_argument("--allow-depth-range", action="store_true",
                   help="write metric depth even if its median is outside 0.05-1000 m")
    p.add_argument("--prefix", default="train", help="shard name prefix (train, val, image...)")
    p.add_argument("--clip-len", type=int, default=32, help="frames per clip (<= 0: whole sequence)")
    p.add_argument("--stride", type=int, default=None, help="frames between clip starts (default: clip span)")
    p.add_argument("--frame-step", type=int, default=1, help="take every k-th frame")
    p.add_argument("--short-side", type=int, default=0, help="resize so that the short side is this (0: keep)")
    p.add_argument("--images", action="store_true", help="one single-frame image sample per frame")
    p.add_argument("--frame-format", choices=["png", "jpg"], default="png")
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--depth-encoding", choices=["png16", "f16", "f32"], default="png16")
    p.add_argument("--depth-scale", type=float, default=None,
                   help="png16: stored = round(depth * scale); default: the finest scale that fits, per clip")
    p.add_argument("--max-samples-per-shard", type=int, default=64)
    p.add_argument("--max-shard-mb", type=float, default=2048.0)
    p.add_argument("--workers", type=int, default=1, help="parallel shard writers (processes)")
    p.add_argument("--no-progress", action="store_true")


def _options(a) -> ShardOptions:
    span = (a.clip_len - 1) * a.frame_step + 1 if a.clip_len > 0 else 1
    return ShardOptions(clip_len=1 if a.images else a.clip_len, stride=a.stride or span, frame_step=a.frame_step,
                        short_side=a.short_side, sample_type="image" if a.images else "clip",
                        frame_format=a.frame_format, depth_encoding=a.depth_encoding, depth_scale=a.depth_scale,
                        jpeg_quality=a.jpeg_quality, max_samples_per_shard=a.max_samples_per_shard,
                        max_shard_mb=a.max_shard_mb)


def _inspect(paths: list[str]) -> dict:
    from .depth_stats import DepthStats
    from .shards import expand_shards, read_index
    from .streams import SkipCounters, iter_tar_samples

    urls = expand_shards(paths, "inspect")
    counters = SkipCounters(1, "inspect")
    kinds, frames, indexed = Counter(), 0, 0
    depth: dict[str, DepthStats] = {}
    geometry: dict[str, Counter] = {}
    for url in urls:
        indexed += int((read_index(url) or {}).get("num_samples", 0))
        for raw in iter_tar_samples(url, counters):
            try:
                rec = decode_members(raw)
            except SampleError as exn:
                counters.skip(exn.reason, f"{url}:{raw['__key__']}", exn.detail)
                continue
            counters.ok()
            kinds[rec.depth_kind] += 1
            frames += rec.num_frames
            g = geometry.setdefault(rec.dataset, Counter())
            g["samples"] += 1
            g["with_K"] += rec.K is not None
            g["with_poses"] += rec.poses is not None
            if rec.depth is not None:
                key = rec.dataset if rec.depth_kind == "metric_depth" else f"{rec.dataset} [{rec.depth_kind}]"
                depth.setdefault(key, DepthStats(rec.depth_kind, rec.depth_units)).add(rec.depth, rec.mask)
    for key in sorted(depth):
        print(depth[key].describe(key), file=sys.stderr)
    return {"shards": len(urls), "indexed_samples": indexed, "frames": frames, "depth_kinds": dict(kinds),
            "counts": counters.as_dict(), "depth": {k: v.summary() for k, v in depth.items()},
            "geometry": {k: dict(v) for k, v in geometry.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vda-shard", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("folders", help="ROOT/<sequence>/{frames,depth,[mask]}/ (+ K.txt, poses.txt)")
    p.add_argument("root")
    p.add_argument("--dataset", default=None)
    p.add_argument("--factor", type=float, default=1.0, help="depth = stored / factor")
    p.add_argument("--depth-kind", choices=DEPTH_KINDS, default="metric_depth")
    p.add_argument("--units", default="m")
    _common(p)
    p = sub.add_parser("manifest", help="a JSON or CSV manifest")
    p.add_argument("manifest")
    p.add_argument("--factor", type=float, default=None, help="override the manifest's factor")
    p.add_argument("--depth-kind", choices=DEPTH_KINDS, default=None)
    _common(p)
    p = sub.add_parser("benchmark", help="the published benchmark JSON layout")
    p.add_argument("json")
    p.add_argument("--datasets", nargs="*", default=None)
    _common(p)
    p = sub.add_parser("synthetic", help="procedural scenes (the quick-start data)")
    p.add_argument("--out", required=True)
    p.add_argument("--train-clips", type=int, default=256)
    p.add_argument("--val-clips", type=int, default=16)
    p.add_argument("--images", type=int, default=0, help="single-frame image samples (with pseudo-labels)")
    p.add_argument("--clip-len", type=int, default=32)
    p.add_argument("--height", type=int, default=112)
    p.add_argument("--width", type=int, default=154)
    p.add_argument("--clips-per-shard", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("inspect", help="decode every sample; counts per skip reason, depth range per dataset")
    p.add_argument("paths", nargs="+")
    for conv in CONVERTERS.values():
        p = sub.add_parser(conv.name, help=conv.summary, description=conv.layout,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        conv.add_arguments(p)
        _common(p, conv.default_out)
        p.set_defaults(**conv.defaults)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "synthetic":
            from .synthetic_scenes import generate_synthetic_shards

            out = generate_synthetic_shards(a.out, a.train_clips, a.val_clips, a.clip_len, a.height, a.width, a.seed,
                                            a.clips_per_shard, a.images)
            summary = {k: len(v) for k, v in out.items()}
        elif a.cmd == "inspect":
            summary = _inspect(a.paths)
        else:
            hint = "--factor"
            if a.cmd in CONVERTERS:
                seqs, hint = CONVERTERS[a.cmd].read_sequences(a), CONVERTERS[a.cmd].unit_hint
            elif a.cmd == "folders":
                seqs = read_folders(a.root, a.dataset, a.factor, a.depth_kind, a.units)
            elif a.cmd == "manifest":
                seqs = read_manifest(a.manifest, a.factor, a.depth_kind)
            else:
                seqs, hint = read_benchmark_json(a.json, a.datasets), "the JSON's factor"
            summary = write_shards(seqs, a.out, a.prefix, _options(a), a.workers, progress=not a.no_progress,
                                   check_units=not a.allow_depth_range, unit_hint=hint)
            summary["shards"] = len(summary["shards"])
    except (ValueError, FileNotFoundError) as exn:
        print(f"vda-shard: error: {exn}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
