"""The names and symbolic shapes of every exported graph's inputs and outputs (plain Python, no torch): the
exporter, the sidecar, the onnxruntime backend and the TensorRT profiles all read them from here.

Symbols: `batch`, `frames` (1..32), `n` (frames of a flat batch), `h` = H/PATCH and `w` = W/PATCH (so an image side
is `PATCH·h`, written `"{PATCH}*h"`; PATCH is the model's patch, `patch_of(config)`: 14, or 16 for DINOv3),
`context` (cached frames of the streaming step, 0..31); cache rows such as `batch*h*w` are products.
"""
from __future__ import annotations

from ..models.input_contract import PATCH_SIZE as PATCH  # torch-free: this module stays free of torch

FILE_NAMES = {"video": "model.onnx", "encoder": "encoder.onnx", "head": "head.onnx", "stream": "streaming.onnx"}
MAX_FRAMES = 32  # the temporal position table
SYMBOLS = ("batch", "frames", "n", "h", "w", "context")

# The temporal modules in cache order (published `video_depth_stream.py`): TM0 on layer_3, TM1 on layer_4, TM2 on
# path_4, TM3 on path_3; two attention blocks each.
CACHE_NAMES = tuple(f"tm{m}_attn{a}" for m in range(4) for a in range(2))
_CACHE_ROWS = ("batch*h*w", "batch*ceil(h/2)*ceil(w/2)", "batch*h*w", "batch*2h*2w")  # B*S per temporal module


def patch_of(config) -> int:
    """The model's patch (`ModelConfig.patch_size`: 14 for DINOv2, 16 for DINOv3); 14 for a config without one."""
    return int(getattr(config, "patch_size", None) or PATCH)


def graph_io(kind: str, config) -> tuple[dict, dict]:
    """(inputs, outputs) of a graph kind (video, encoder, head, stream): name -> shape, each dim an int or a
    symbol (see the module docstring)."""
    d, f = config.embed_dim, config.features
    patch = patch_of(config)
    image = [f"{patch}*h", f"{patch}*w"]
    if kind == "video":
        return {"frames": ["batch", "frames", 3, *image]}, {"depth": ["batch", "frames", *image]}
    if kind == "encoder":
        outs = {}
        for i in range(4):
            outs[f"tokens_{i}"], outs[f"cls_{i}"] = ["n", "h*w", d], ["n", d]
        return {"frames": ["n", 3, *image]}, outs
    if kind == "head":
        return {f"tokens_{i}": ["batch", "frames", "h", "w", d] for i in range(4)}, {"depth": ["batch", "frames",
                                                                                              *image]}
    if kind == "stream":
        chans = [config.out_channels[2], config.out_channels[3], f, f]
        ins, outs = {"frame": ["batch", 3, *image]}, {"depth": ["batch", *image]}
        for i, name in enumerate(CACHE_NAMES):
            ins[f"cache_{name}"] = [_CACHE_ROWS[i // 2], "context", chans[i // 2]]
            outs[f"state_{name}"] = [_CACHE_ROWS[i // 2], 1, chans[i // 2]]
        return ins, outs
    raise ValueError(f"unknown graph kind {kind!r}")


def _factors(dim: str):
    """"batch*ceil(h/2)*2w" -> [(1, "batch", False), (1, "h", True), (2, "w", False)]; digits -> (k, None, False)."""
    out = []
    for factor in dim.split("*"):
        if factor.isdigit():
            out.append((int(factor), None, False))
        elif factor.startswith("ceil(") and factor.endswith("/2)"):
            out.append((1, factor[5:-3], True))
        elif factor[:-1].isdigit():  # "2h"
            out.append((int(factor[:-1]), factor[-1], False))
        else:
            out.append((1, factor, False))
    return out


def dim_value(dim, sizes: dict) -> int:
    """A symbolic dim of `graph_io` at concrete sizes, e.g. dim_value("batch*ceil(h/2)*ceil(w/2)", {...})."""
    if isinstance(dim, int):
        return dim
    value = 1
    for coef, symbol, half_up in _factors(dim):
        size = 1 if symbol is None else sizes[symbol]
        value *= coef * (-(-size // 2) if half_up else size)
    return value


def graph_symbols(kind: str, config) -> list[str]:
    """The symbols a graph's inputs use, in SYMBOLS order (what its sidecar documents)."""
    inputs, _ = graph_io(kind, config)
    used = {sym for dims in inputs.values() for d in dims if isinstance(d, str) for _, sym, _ in _factors(d)}
    return [s for s in SYMBOLS if s in used]


def kind_of(input_names, output_names, config) -> str | None:
    """The graph kind (video, encoder, head, stream) whose input and output names, in order, these are; None for
    none (what a file really holds, whatever its name and sidecar say)."""
    for kind in FILE_NAMES:
        inputs, outputs = graph_io(kind, config)
        if list(inputs) == list(input_names) and list(outputs) == list(output_names):
            return kind
    return None


def static_dims_differ(kind: str, config, inputs: dict, outputs: dict) -> str | None:
    """The first input/output whose fixed (integer) sizes in a loaded graph (`name -> [int | str | None]`, as
    onnxruntime reports them) differ from `graph_io(kind, config)`, as "name axis i: got vs want"; None if all agree.
    Catches a sidecar whose model config is not the graph's (a vits sidecar on a vitb graph)."""
    want_in, want_out = graph_io(kind, config)
    for got, want in ((inputs, want_in), (outputs, want_out)):
        for name, dims in want.items():
            shape = list(got.get(name) or [])
            if len(shape) != len(dims):
                return f"{name} has {len(shape)} axes, not {len(dims)}"
            for axis, (g, w) in enumerate(zip(shape, dims)):
                if isinstance(w, int) and isinstance(g, int) and g != w:
                    return f"{name} axis {axis} is {g}, not {w}"
    return None
