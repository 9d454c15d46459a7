"""The `vda export --format onnx|tensorrt` options and writers (the format table lives in vda_lightning/export.py).

Importing this module is cheap (argparse only): it is on the `vda export --help` path.
"""
from __future__ import annotations

import argparse
from pathlib import Path

EXPORTERS = ("auto", "torchscript", "dynamo")  # onnx_export.EXPORTERS (checked against it in the tests)


def add_export_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("onnx and tensorrt formats (docs/deploy.md)")
    g.add_argument("--parts", action="store_true",
                   help="also encoder.onnx + head.onnx beside the output (what vda infer --backend onnxruntime "
                        "runs offline)")
    g.add_argument("--streaming", action="store_true",
                   help="also streaming.onnx: one online step with the temporal caches as named inputs/outputs")
    g.add_argument("--fp16", action="store_true",
                   help="fp16 graphs under the published autocast policy (fp32 norms and output tail)")
    g.add_argument("--exporter", choices=EXPORTERS, default="auto",
                   help="torch's ONNX exporter (auto: torchscript while torch ships it, else dynamo)")
    g.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17 torchscript, 18 dynamo)")
    g.add_argument("--no-check", action="store_true",
                   help="skip the onnxruntime-vs-PyTorch check of each file at untraced shapes")
    g.add_argument("--height", default=None, metavar="MIN,OPT,MAX",
                   help="tensorrt: profile of the input height in pixels, multiples of the model's patch (default "
                        "20,37,37 patches: 280,518,518 for DINOv2's 14)")
    g.add_argument("--width", default=None, metavar="MIN,OPT,MAX",
                   help="tensorrt: profile of the input width in pixels, multiples of the model's patch (default "
                        "20,37,66 patches: 280,518,924 for DINOv2's 14)")
    g.add_argument("--frames", default="1,32,32", metavar="MIN,OPT,MAX", help="tensorrt: frames per clip (1..32)")
    g.add_argument("--batch", default="1,1,1", metavar="MIN,OPT,MAX", help="tensorrt: clips per call")
    g.add_argument("--workspace-gib", type=float, default=4.0, help="tensorrt: builder workspace")


def onnx_options(args: argparse.Namespace) -> dict:
    """The writer keyword arguments of the parsed options."""
    return {k: getattr(args, k) for k in ("parts", "streaming", "fp16", "exporter", "opset", "no_check", "height",
                                          "width", "frames", "batch", "workspace_gib")}


def write_onnx(model, path: Path, *, source=None, parts=False, streaming=False, fp16=False, exporter="auto",
               opset=None, no_check=False, **_tensorrt) -> Path:
    from .onnx_export import export_onnx

    written = export_onnx(model, path, parts=parts, streaming=streaming, fp16=fp16, opset=opset,
                          exporter=exporter, source=source, check=not no_check)
    return written[0]


def write_tensorrt(model, path: Path, *, source=None, parts=False, streaming=False, fp16=False, exporter="auto",
                   opset=None, no_check=False, height=None, width=None, frames="1,32,32",
                   batch="1,1,1", workspace_gib=4.0) -> Path:
    """ONNX graphs beside `path` (model.onnx, ...), then one engine per graph (model.engine, encoder.engine, ...)."""
    from .onnx_export import export_onnx
    from .signatures import patch_of
    from .tensorrt import ShapeRange, TensorRTUnavailable, build_engine, missing_requirements, parse_triple

    problem = missing_requirements()  # before the (slow) ONNX export
    if problem:
        raise TensorRTUnavailable(f"--format tensorrt needs tensorrt and a CUDA device: {problem}")
    sides = {name: parse_triple(value, name) for name, value in (("height", height), ("width", width)) if value}
    shapes = ShapeRange(**sides, frames=parse_triple(frames, "frames"), batch=parse_triple(batch, "batch"),
                        patch=patch_of(model.config))  # default sides: 20..37..37 x 20..37..66 patches
    path = Path(path)
    graphs = export_onnx(model, path.with_suffix(".onnx"), parts=parts, streaming=streaming, fp16=fp16, opset=opset,
                         exporter=exporter, source=source, check=not no_check)
    engines = [build_engine(g, path if g == graphs[0] else g.with_suffix(".engine"), shapes, fp16=fp16,
                            workspace_gib=workspace_gib) for g in graphs]
    return engines[0]
