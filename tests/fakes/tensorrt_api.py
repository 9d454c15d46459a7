"""A stand-in for the `tensorrt` Python package (its builder API, 8.6-10.x), recording what the engine builder asks.

No GPU or TensorRT here: this checks our side of the contract (network flags, profile shapes, precision settings,
the files written), not TensorRT itself. `strongly_typed=False` mimics a TensorRT without strong typing.
"""
from __future__ import annotations

import types

import onnx


def make_tensorrt(strongly_typed: bool = True):
    calls: dict = {"profiles": [], "flags": set(), "layer_precision": {}}
    trt = types.SimpleNamespace(__version__="10.fake", float32="float32", calls=calls)

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class Layer:
        def __init__(self, name):
            self.name, self.num_outputs = name, 1
            self._precision = None

        @property
        def precision(self):
            return self._precision

        @precision.setter
        def precision(self, value):
            self._precision = value
            calls["layer_precision"][self.name] = value

        def set_output_type(self, index, dtype):
            calls.setdefault("output_types", {})[self.name] = dtype

    class Network:
        def __init__(self, flags):
            calls["network_flags"] = flags
            self.layers = []

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            self.network = network

        def parse_from_file(self, path):
            graph = onnx.load(path, load_external_data=False).graph
            self.network.layers = [Layer(n.name) for n in graph.node]
            calls["parsed"] = path
            return True

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls["profiles"].append((name, tuple(lo), tuple(opt), tuple(hi)))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            calls["workspace"] = size

        def set_flag(self, flag):
            calls["flags"].add(flag)

        def add_optimization_profile(self, profile):
            calls["profile_added"] = True

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"fake-engine:" + str(sorted(calls["flags"])).encode()

    flags = {"EXPLICIT_BATCH": 0}
    if strongly_typed:
        flags["STRONGLY_TYPED"] = 5
    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(**flags)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.BuilderFlag = types.SimpleNamespace(FP16="fp16", OBEY_PRECISION_CONSTRAINTS="obey")
    return trt
