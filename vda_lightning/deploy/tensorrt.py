"""TensorRT engines from the exported ONNX files: optimisation profiles for the dynamic axes, fp16, and the
equivalent `trtexec` command line.

`build_engine` needs the `tensorrt` Python package and a CUDA device; `missing_requirements()` says which is
absent in one line. Everything else here (profiles, layer choice, the trtexec line) is plain Python, tested
without a GPU.

fp16: the engine is built from the fp16 ONNX export, whose graph already carries the published autocast policy
as explicit casts (float32 norms and output tail, see graphs.Float32Island), as a *strongly typed* network, so
TensorRT keeps those types. TensorRT versions without strong typing get the FP16 builder flag plus float32
precision constraints on the same layers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..models.input_contract import is_multiple_size
from .signatures import PATCH, dim_value

FLOAT32_OPS = ("LayerNormalization", "InstanceNormalization")  # the norms (GroupNorm exports as InstanceNorm)
TAIL = "output_conv2"  # the published float32 output tail (dpt_temporal.py, under autocast)


class TensorRTUnavailable(ValueError):
    """`--format tensorrt` asked for where tensorrt or a CUDA device is missing."""


def missing_requirements() -> str | None:
    """None when an engine can be built here, else one line saying what is missing."""
    import importlib.util

    problems = []
    if importlib.util.find_spec("tensorrt") is None:
        problems.append("the tensorrt Python package is not installed (pip install tensorrt)")
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a core dependency
        cuda = False
    if not cuda:
        problems.append("no CUDA device is visible")
    return "; ".join(problems) or None


DEFAULT_SIDES = {"height": (20, 37, 37), "width": (20, 37, 66)}  # in patches: 280..518..518 x 280..518..924 at 14


@dataclass(frozen=True)
class ShapeRange:
    """Inclusive (min, opt, max) of the run-time sizes an engine accepts; image sides in pixels, multiples of the
    model's `patch` (14 for DINOv2, 16 for DINOv3). Sides left None are 20..37..37 by 20..37..66 patches."""

    height: tuple[int, int, int] | None = None
    width: tuple[int, int, int] | None = None
    frames: tuple[int, int, int] = (1, 32, 32)
    batch: tuple[int, int, int] = (1, 1, 1)
    context: tuple[int, int, int] = (0, 31, 31)
    patch: int = PATCH

    def __post_init__(self):
        for name in ("height", "width", "frames", "batch", "context"):
            lo, opt, hi = self.side(name) if name in DEFAULT_SIDES else getattr(self, name)
            if not lo <= opt <= hi:
                raise ValueError(f"{name}: need min <= opt <= max, got {lo}, {opt}, {hi}")
        for name in DEFAULT_SIDES:
            bad = [v for v in self.side(name) if not is_multiple_size([v], self.patch)]
            if bad:
                raise ValueError(f"{name} {bad[0]}: image sides must be positive multiples of {self.patch} (the "
                                 f"model's patch)")
        if self.frames[2] > 32 or self.frames[0] < 1:
            raise ValueError(f"frames must lie in 1..32, got {self.frames}")
        if self.context[2] > 31 or self.context[0] < 0:
            raise ValueError(f"context must lie in 0..31, got {self.context}")

    def side(self, name: str) -> tuple[int, int, int]:
        """`height` or `width` in pixels: as given, or the default range in this patch."""
        given = getattr(self, name)
        return tuple(given) if given is not None else tuple(self.patch * v for v in DEFAULT_SIDES[name])

    def sizes(self, which: int) -> dict:
        """The graph symbols at min (0), opt (1) or max (2)."""
        return {"batch": self.batch[which], "frames": self.frames[which],
                "n": self.batch[which] * self.frames[which], "h": self.side("height")[which] // self.patch,
                "w": self.side("width")[which] // self.patch, "context": self.context[which]}


def parse_triple(text: str, name: str) -> tuple[int, int, int]:
    """"1,32,32" -> (1, 32, 32); a single value means min = opt = max."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--{name} takes MIN,OPT,MAX integers, got {text!r}") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"--{name} takes MIN,OPT,MAX, got {text!r}")
    return values  # type: ignore[return-value]


def profile_shapes(sidecar: dict, shapes: ShapeRange) -> dict[str, tuple[tuple[int, ...], ...]]:
    """input name -> (min, opt, max) shapes of one optimisation profile, from the sidecar's symbolic inputs; the
    sides are checked against the patch the sidecar records (a DINOv3 graph takes multiples of 16)."""
    patch = int(sidecar.get("input_contract", {}).get("patch", PATCH))
    if patch != shapes.patch:
        shapes = replace(shapes, patch=patch)
    out = {}
    for name, spec in sidecar["inputs"].items():
        out[name] = tuple(tuple(dim_value(d, shapes.sizes(i)) for d in spec["shape"]) for i in range(3))
    return out


def float32_layers(onnx_path: str | os.PathLike) -> list[str]:
    """Names of the nodes kept in float32 when fp16 runs weakly typed: the norms and the output tail."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in FLOAT32_OPS or TAIL in n.name]


def trtexec_command(onnx_path, engine_path, profile: dict, fp16: bool) -> str:
    """The trtexec line that builds the same engine."""
    def spec(i):
        return ",".join(f"{name}:{'x'.join(str(d) for d in shapes[i])}" for name, shapes in profile.items())

    parts = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", f"--minShapes={spec(0)}",
             f"--optShapes={spec(1)}", f"--maxShapes={spec(2)}"]
    if fp16:
        parts.append("--stronglyTyped")  # types from the fp16 ONNX graph (casts included)
    return " ".join(parts)


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, shapes: ShapeRange | None = None,
                 fp16: bool = False, workspace_gib: float = 4.0, log=print) -> Path:
    """Parse `onnx_path` (with its sidecar), build a serialized engine for one profile, write it atomically with
    an `<engine>.json` sidecar. Needs tensorrt and a CUDA device."""
    from ..io import write_bytes_atomic, write_json_atomic
    from .sidecar import file_sha256, read_sidecar

    problem = missing_requirements()
    if problem:
        raise TensorRTUnavailable(f"--format tensorrt needs tensorrt and a CUDA device: {problem}")
    import tensorrt as trt

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    sidecar = read_sidecar(onnx_path)
    shapes = shapes or ShapeRange()
    profile = profile_shapes(sidecar, shapes)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = fp16 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8: required; 10: the default
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTUnavailable(f"{onnx_path}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16 and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        keep = set(float32_layers(onnx_path))
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.name in keep or TAIL in layer.name:
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
    opt = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile.items():
        opt.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(opt)
    log(f"vda-export: building a TensorRT engine from {onnx_path} ({'fp16' if fp16 else 'fp32'}) ...")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTUnavailable(f"{onnx_path}: TensorRT could not build an engine (see its log above)")
    write_bytes_atomic(engine_path, bytes(serialized))
    side = {"format": "vda-lightning-engine", "version": 1, "file": engine_path.name,
            "sha256": file_sha256(engine_path), "onnx": onnx_path.name, "onnx_sha256": sidecar["sha256"],
            "graph": sidecar["graph"], "precision": "fp16" if fp16 else "fp32", "strongly_typed": strongly_typed,
            "tensorrt": trt.__version__, "profile": {k: [list(s) for s in v] for k, v in profile.items()},
            "trtexec": trtexec_command(onnx_path, engine_path, profile, fp16),
            "model_config": sidecar["model_config"], "input_contract": sidecar["input_contract"]}
    write_json_atomic(engine_path.with_name(engine_path.name + ".json"), side)
    return engine_path
