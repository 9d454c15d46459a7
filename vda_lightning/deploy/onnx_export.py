"""`export_onnx(model, "out/model.onnx", parts=True, streaming=True)`: the graphs of `graphs.py` as ONNX files with
named, symbolic shapes, each checked against PyTorch at sizes other than the traced ones and described by a sidecar.

Exporters (torch 2.14): `torchscript` (the tracing exporter, `torch.onnx.export(dynamo=False)`) and `dynamo` (the
`torch.export`-based one). Both keep every axis dynamic with `graphs.pos_embed_graph`; neither can with the model's
own `F.interpolate(scale_factor=...)` (dynamo bakes the traced size in, tracing fails on the size arithmetic).
`auto` takes torchscript while torch still ships it: on this 2-core CPU it exports the vits model in ~5-20 s where
dynamo takes 1-3 minutes, and its fp16 graph under autocast is valid (dynamo's mixes float16 and float32 inputs of
one LayerNormalization, which onnxruntime refuses to load).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from .sidecar import input_contract, package_versions, write_sidecar
from .signatures import FILE_NAMES, MAX_FRAMES, dim_value, graph_io, graph_symbols, patch_of

EXPORTERS = ("auto", "torchscript", "dynamo")
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}  # 17: the newest that TensorRT 8.6 parses; 18: dynamo's lowest
# Sizes the graphs are traced at, and sizes they are checked at (every symbol different, h and w not square).
TRACE_SIZES = {"batch": 2, "frames": 2, "n": 4, "h": 3, "w": 4, "context": 5}
CHECK_SIZES = [{"batch": 1, "frames": 3, "n": 3, "h": 5, "w": 6, "context": 0},
               {"batch": 1, "frames": 1, "n": 1, "h": 4, "w": 3, "context": 31}]
CHECK_TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2}  # max |onnx - torch fp32| / max |torch fp32|


class ExportError(ValueError):
    """An export that cannot be done as asked; the message is one line."""


def graph_kinds(parts: bool = False, streaming: bool = False, whole: bool = True) -> list[str]:
    return (["video"] if whole else []) + (["encoder", "head"] if parts else []) + (["stream"] if streaming else [])


def output_paths(output: str | os.PathLike, kinds: list[str]) -> dict[str, Path]:
    """The whole model goes to `output`; the other graphs beside it under fixed names (signatures.FILE_NAMES)."""
    output = Path(output)
    if output.suffix != ".onnx":
        raise ExportError(f"{output}: the file name must end in .onnx for --format onnx")
    paths = {k: (output if k == "video" else output.with_name(FILE_NAMES[k])) for k in kinds}
    clash = [k for k in kinds if k != "video" and paths[k] == output]
    if clash:
        raise ExportError(f"{output}: that name is reserved for the {clash[0]} graph; name the whole model otherwise")
    return paths


def resolve_exporter(exporter: str, fp16: bool) -> str:
    if exporter not in EXPORTERS:
        raise ExportError(f"--exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if exporter == "auto":
        exporter = "torchscript" if _has_torchscript_exporter() else "dynamo"
    if exporter == "dynamo" and fp16:
        raise ExportError("--fp16 needs --exporter torchscript: the dynamo exporter's autocast graph (torch 2.14) "
                          "gives one LayerNormalization float16 and float32 inputs, which onnxruntime refuses")
    if exporter == "torchscript" and not _has_torchscript_exporter():
        raise ExportError("this torch no longer ships the torchscript ONNX exporter; use --exporter dynamo")
    return exporter


def _has_torchscript_exporter() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch.onnx._internal.torchscript_exporter") is not None or \
        importlib.util.find_spec("torch.onnx.utils") is not None


def sample_inputs(kind: str, config, sizes: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 inputs of a graph at concrete sizes (frames ~ N(0, 1), like normalised images)."""
    rng = np.random.default_rng(seed)
    inputs, _ = graph_io(kind, config)
    return {name: rng.standard_normal([dim_value(d, sizes) for d in dims]).astype(np.float32)
            for name, dims in inputs.items()}


def _torch_reference(model, kind: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs computed by the PyTorch model itself (its own code path, float32)."""
    import torch

    from .signatures import CACHE_NAMES

    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.inference_mode():
        if kind == "video":
            return [model(t["frames"]).numpy()]
        if kind == "encoder":
            return [x.numpy() for pair in model.forward_features(t["frames"]) for x in pair]
        if kind == "head":
            b, f, h, w, _ = t["tokens_0"].shape
            feats = [(t[f"tokens_{i}"].reshape(b * f, h * w, -1), None) for i in range(4)]
            patch = patch_of(model.config)
            return [model.forward_depth(feats, h * patch, w * patch, b, f)[0].numpy()]
        frame = t["frame"]
        cached = [t[f"cache_{n}"] for n in CACHE_NAMES]
        depth, states = model.forward_step(frame, *frame.shape[-2:], cached if cached[0].shape[1] else None)
        return [depth[:, 0].numpy()] + [s.numpy() for s in states]


def _rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.abs(ref).max())
    return float(np.abs(out.astype(np.float64) - ref).max() / (scale if scale > 0 else 1.0))


def check_graph(path: Path, model, kind: str, precision: str, threads: int = 0, name: Path | None = None) -> list[dict]:
    """Run the file in onnxruntime (CPU) at CHECK_SIZES and compare every output with the PyTorch model; errors
    name `name` (the final path of a file still under its temporary name)."""
    from .ort_backend import make_session

    session = make_session(path, device="cpu", threads=threads)
    path = name or path
    names = [o.name for o in session.get_outputs()]
    results = []
    for i, sizes in enumerate(CHECK_SIZES):
        feeds = sample_inputs(kind, model.config, sizes, seed=1 + i)
        outs = session.run(names, feeds)
        refs = _torch_reference(model, kind, feeds)
        for name, out, ref in zip(names, outs, refs):
            if out.shape != ref.shape:
                raise ExportError(f"{path}: output {name} has shape {out.shape} at {sizes}, PyTorch {ref.shape}: "
                                  "an axis the export should keep dynamic was fixed")
        errors = {name: _rel_err(out, ref) for name, out, ref in zip(names, outs, refs)}
        worst = max(errors, key=errors.get)
        finite = all(bool(np.isfinite(o).all()) for o in outs)
        results.append({"sizes": sizes, "inputs": {k: list(v.shape) for k, v in feeds.items()},
                        "max_rel_diff": errors[worst], "worst_output": worst, "finite": finite})
        if not finite or errors[worst] > CHECK_TOLERANCE[precision]:
            raise ExportError(f"{path}: {worst} differs from PyTorch by {errors[worst]:.2e} (relative) at {sizes}"
                              f"{'' if finite else ', with non-finite values'}; tolerance "
                              f"{CHECK_TOLERANCE[precision]:.0e}")
    return results


def _trace(model, kind: str, path: Path, exporter: str, opset: int, fp16: bool) -> None:
    import torch

    from .graphs import GRAPHS, export_mode

    graph = GRAPHS[kind](model, fp16=fp16).eval()
    inputs, outputs = graph_io(kind, model.config)
    args = tuple(torch.from_numpy(v) for v in sample_inputs(kind, model.config, TRACE_SIZES).values())
    with export_mode(model, fp16=fp16), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's deprecation and trace warnings; the check below is the proof
        if exporter == "torchscript":
            axes = {name: {i: str(d) for i, d in enumerate(dims) if not isinstance(d, int)}
                    for name, dims in {**inputs, **outputs}.items()}
            torch.onnx.export(graph, args, str(path), dynamo=False, opset_version=opset, input_names=list(inputs),
                              output_names=list(outputs), dynamic_axes=axes, do_constant_folding=True)
        else:
            program = torch.onnx.export(graph, args, dynamo=True, opset_version=opset, input_names=list(inputs),
                                        output_names=list(outputs),
                                        dynamic_shapes=_dynamic_shapes(inputs, patch_of(model.config)),
                                        verbose=False)
            program.save(str(path))


def _dynamic_shapes(inputs: dict, patch: int) -> tuple:
    """torch.export's view of graph_io: h and w as Dims (>= 3, what torch.export can prove for the stride-2
    layer), image sides as patch·h, cache rows left to torch.export (products of symbols are not Dims)."""
    from torch.export import Dim

    dims = {"batch": Dim("batch", min=1, max=1024), "frames": Dim("frames", min=1, max=MAX_FRAMES),
            "n": Dim("n", min=1, max=4096), "h": Dim("h", min=3, max=512), "w": Dim("w", min=3, max=512),
            "context": Dim("context", min=0, max=MAX_FRAMES - 1)}
    spec = []
    for shape in inputs.values():
        axes = {}
        for i, d in enumerate(shape):
            if isinstance(d, int):
                continue
            if d in dims:
                axes[i] = dims[d]
            elif d.startswith(f"{patch}*"):
                axes[i] = patch * dims[d.split("*", 1)[1]]
            else:
                axes[i] = Dim.AUTO
        spec.append(axes)
    return (tuple(spec),)  # the graphs' forward takes *inputs


def _finish(path: Path, kind: str, config, meta: dict) -> None:
    """Name every input/output dim as graph_io does (both exporters; tracing leaves sample sizes on outputs),
    drop stale intermediate shapes, stamp metadata, check the model."""
    import onnx

    model = onnx.load(str(path))
    inputs, outputs = graph_io(kind, config)
    for values, spec in ((model.graph.input, inputs), (model.graph.output, outputs)):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            for dim, want in zip(dims, spec[value.name]):
                if isinstance(want, int):
                    dim.Clear()
                    dim.dim_value = want
                else:
                    dim.Clear()
                    dim.dim_param = want
    del model.graph.value_info[:]
    model.producer_name = "vda-lightning"
    model.doc_string = f"Video Depth Anything {config.encoder}: {kind} graph (see {path.name}.json)"
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_onnx(model, output: str | os.PathLike, *, parts: bool = False, streaming: bool = False,
                fp16: bool = False, opset: int | None = None, exporter: str = "auto",
                source: str | os.PathLike | None = None, check: bool = True, whole: bool = True,
                log=print) -> list[Path]:
    """Export `model` (a VideoDepthAnything) to `output` (+ encoder/head with `parts`, the online step with
    `streaming`; `whole=False` leaves the whole model out), each file atomically and with its sidecar. Returns the
    written graph paths."""
    from ..io import atomic_path
    from ..models import VideoDepthAnything

    if not isinstance(model, VideoDepthAnything):
        raise ExportError(f"{source or 'model'}: a {type(model).__name__} is not a video model; ONNX export takes "
                          "a Video Depth Anything checkpoint")
    exporter = resolve_exporter(exporter, fp16)
    opset = opset or DEFAULT_OPSET[exporter]
    precision = "fp16" if fp16 else "fp32"
    model = model.float().eval()
    kinds = graph_kinds(parts, streaming, whole)
    if not kinds:
        raise ExportError(f"{output}: nothing to export (whole=False without parts or streaming)")
    paths = output_paths(output, kinds)
    source_info = None
    if source is not None:
        from .sidecar import file_sha256

        source_info = {"path": str(Path(source).resolve()), "sha256": file_sha256(source)}
    written = []
    for kind, path in paths.items():
        log(f"vda-export: {kind} graph -> {path} ({exporter}, opset {opset}, {precision}) ...")
        start = time.perf_counter()
        with atomic_path(path) as tmp:
            _trace(model, kind, tmp, exporter, opset, fp16)
            seconds = time.perf_counter() - start
            _finish(tmp, kind, model.config, {"vda_graph": kind, "vda_precision": precision,
                                              "vda_encoder": model.config.encoder})
            checks = check_graph(tmp, model, kind, precision, name=path) if check else []
        write_sidecar(path, sidecar_info(kind, model.config, precision, exporter, opset, source_info, seconds,
                                         checks))
        worst = max((c["max_rel_diff"] for c in checks), default=math.nan)
        log(f"vda-export: wrote {path} in {seconds:.1f} s (max relative difference to PyTorch {worst:.1e})")
        written.append(path)
    return written


def sidecar_info(kind: str, config, precision: str = "fp32", exporter: str = "torchscript", opset: int = 17,
                 source: dict | None = None, seconds: float = 0.0, checks: list | None = None) -> dict:
    """What the sidecar of a `kind` graph of a `config` model says (`sidecar.write_sidecar` adds format, version,
    file name and sha256); `deploy/schema.py` is its schema."""
    inputs, outputs = graph_io(kind, config)
    return {
        "graph": kind, "precision": precision, "model_config": config.to_dict(),
        "input_contract": input_contract(config),
        "inputs": {k: {"dtype": "float32", "shape": v} for k, v in inputs.items()},
        "outputs": {k: {"dtype": "float32", "shape": v} for k, v in outputs.items()},
        "dynamic_axes": _axis_ranges(exporter, graph_symbols(kind, config), patch_of(config)),
        "opset": opset, "exporter": exporter, "versions": package_versions(),
        "source_checkpoint": source, "export_seconds": round(seconds, 2),
        "export_check": checks or [], "traced_at": TRACE_SIZES,
    }


def _axis_ranges(exporter: str, symbols: list[str], patch: int) -> dict:
    """What each symbol of the graph may be at run time (inclusive; None: unbounded)."""
    side = 3 if exporter == "dynamo" else 1
    ranges = {
        "batch": {"min": 1, "max": None, "meaning": "clips (or frames of the streaming step) per call"},
        "frames": {"min": 1, "max": MAX_FRAMES, "meaning": "frames per clip (the temporal position table)"},
        "n": {"min": 1, "max": None, "meaning": "frames of a flat batch (encoder)"},
        "h": {"min": side, "max": None, "meaning": f"height / {patch}: input height must be a multiple of {patch}"},
        "w": {"min": side, "max": None, "meaning": f"width / {patch}: input width must be a multiple of {patch}"},
        "context": {"min": 0, "max": MAX_FRAMES - 1, "meaning": "cached frames attended by the streaming step "
                                                              "(0 on the first frame, 31 after)"},
    }
    return {s: ranges[s] for s in symbols}
