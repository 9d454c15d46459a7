"""ONNX export parity on CPU onnxruntime: the whole graph, the parts and the streaming step against the published
code's golden outputs, at shapes other than the traced one; sidecars; fp16; bad input."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file

from vda_lightning.checkpoints import file_sha256
from vda_lightning.deploy.graphs import pos_embed_graph
from vda_lightning.deploy.onnx_export import TRACE_SIZES, ExportError, export_onnx
from vda_lightning.deploy.ort_backend import OnnxBackendError, OnnxRuntimeModel, make_session
from vda_lightning.deploy.sidecar import SidecarError, read_sidecar
from vda_lightning.deploy.signatures import CACHE_NAMES, PATCH, dim_value, graph_io
from vda_lightning.inference import OfflineRunner, StreamingRunner
from vda_lightning.models import build_image_model, build_video_model, interpolate_pos_embed
from vda_lightning.models.configs import ModelConfig
from vda_lightning.models.encoder import PATCH as MODEL_PATCH

TOL = 1e-4  # max |onnx - published| <= 1e-4 * max |published|


def rel_err(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def cases(golden_dir):
    return {k: v.numpy() for k, v in load_file(str(golden_dir / "forward_cases.safetensors")).items()}


@pytest.fixture(scope="module")
def long_case(golden_dir):
    return np.load(golden_dir / "long_video_case.npz")


@pytest.mark.parametrize("h,w", [(37, 37), (9, 12), (7, 8), (4, 5), (1, 1), (20, 37), (37, 66), (74, 3)])
def test_traceable_pos_embed_equals_the_published_resample(h, w):
    torch.manual_seed(0)
    table = torch.randn(1, 1 + 37 * 37, 16)
    ours, ref = pos_embed_graph(table, h, w), interpolate_pos_embed(table, h, w)
    assert ours.shape == ref.shape
    if (h, w) == (37, 37):  # the exactly-518x518 input adds the stored table unchanged
        assert torch.equal(ours, table)
    else:  # float32 rounding of a different summation order only (values ~N(0, 1))
        assert (ours - ref).abs().max().item() < 5e-5
    assert torch.equal(ours[:, 0], table[:, 0])


def test_signatures_agree_with_the_model():
    assert PATCH == MODEL_PATCH
    model = build_video_model("vitt").eval()
    inputs, outputs = graph_io("stream", model.config)
    sizes = {"batch": 2, "h": 3, "w": 5, "context": 0}
    with torch.no_grad():
        _, states = model.forward_step(torch.zeros(2, 3, 42, 70), 42, 70)
    for name, state in zip(CACHE_NAMES, states):
        assert tuple(state.shape) == tuple(dim_value(d, {**sizes, "context": 1}) for d in outputs[f"state_{name}"])
        assert [dim_value(d, sizes) for d in inputs[f"cache_{name}"]][::2] == list(state.shape)[::2]


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_whole_graph_reproduces_the_golden_forward_at_untraced_shapes(golden_onnx_dir, cases, case):
    x = cases[f"{case}.input"]
    b, t, _, h, w = x.shape
    assert (b, t, h // PATCH, w // PATCH) != (TRACE_SIZES["batch"], TRACE_SIZES["frames"], TRACE_SIZES["h"],
                                              TRACE_SIZES["w"])
    model = OnnxRuntimeModel(golden_onnx_dir / "model.onnx", mode="video", device="cpu")
    assert rel_err(model(x), cases[f"{case}.output"]) <= TOL


def test_graph_files_name_every_axis(golden_onnx_dir):
    session = make_session(golden_onnx_dir / "model.onnx", device="cpu")
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("frames", ["batch", "frames", 3, "14*h", "14*w"])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("depth", ["batch", "frames", "14*h", "14*w"])]
    stream = make_session(golden_onnx_dir / "streaming.onnx", device="cpu")
    names = [i.name for i in stream.get_inputs()]
    assert names == ["frame"] + [f"cache_{n}" for n in CACHE_NAMES]
    assert stream.get_inputs()[3].shape == ["batch*ceil(h/2)*ceil(w/2)", "context", 384]  # TM1: C = 384 (vits)
    assert [o.name for o in stream.get_outputs()] == ["depth"] + [f"state_{n}" for n in CACHE_NAMES]


def test_parts_reproduce_the_golden_encoder_features_and_output(golden_onnx_dir, cases):
    model = OnnxRuntimeModel(golden_onnx_dir, mode="offline", device="cpu")
    x = cases["a.input"]  # (1, 5, 3, 126, 168)
    feats = model.forward_features(torch.from_numpy(x[0]))
    for i, (tokens, cls) in enumerate(feats):
        assert rel_err(tokens, cases[f"a.encoder.{i}.tokens"]) <= TOL
        assert rel_err(cls, cases[f"a.encoder.{i}.cls"]) <= TOL
    # the head on the published features (B, T carried by the token layout)
    golden = [(torch.from_numpy(cases[f"a.encoder.{i}.tokens"]), None) for i in range(4)]
    depth, _ = model.forward_depth(golden, 126, 168, 1, 5)
    assert rel_err(depth, cases["a.output"]) <= TOL


def test_offline_runner_on_onnxruntime_reproduces_the_long_video(golden_onnx_dir, long_case):
    model = OnnxRuntimeModel(golden_onnx_dir, mode="offline", device="cpu")
    runner = OfflineRunner(model, input_size=int(long_case["input_size"]))
    out = np.stack(list(runner.run(iter(long_case["frames"]))))
    assert out.dtype == np.float32
    err = np.abs(out - long_case["depths"]).reshape(len(out), -1).max(1) / np.abs(long_case["depths"]).max()
    assert err.max() <= TOL, f"frame {err.argmax()}: {err.max():.2e}"
    assert runner.windows_run == 4 and runner.frames_encoded == 70  # the same key-frame feature reuse


def test_streaming_step_reproduces_the_golden_online_mode(golden_onnx_dir, long_case, golden_dir):
    ref = np.load(golden_dir / "streaming_case.npz")
    model = OnnxRuntimeModel(golden_onnx_dir, mode="streaming", device="cpu")
    runner = StreamingRunner(model, input_size=int(ref["input_size"]))
    out = np.stack(list(runner.run(iter(long_case["frames"][: int(ref["n_frames"])]))))
    assert out.shape == ref["depths"].shape == (60, 90, 160)
    err = np.abs(out - ref["depths"]).reshape(60, -1).max(1) / np.abs(ref["depths"]).max()
    assert err.max() <= TOL, f"frame {err.argmax()}: {err.max():.2e}"
    assert runner.cached_frames == 42  # the runner's bounded cache, fed by the graph's named state outputs


def test_sidecars_describe_the_export(golden_onnx_dir, golden_dir, golden_video_model):
    ckpt_sha = file_sha256(golden_dir / "vda_vits_random.safetensors")
    for name, kind in [("model.onnx", "video"), ("encoder.onnx", "encoder"), ("head.onnx", "head"),
                       ("streaming.onnx", "stream")]:
        side = read_sidecar(golden_onnx_dir / name)
        assert side["graph"] == kind and side["file"] == name and side["precision"] == "fp32"
        assert side["sha256"] == file_sha256(golden_onnx_dir / name)
        assert side["source_checkpoint"]["sha256"] == ckpt_sha
        assert ModelConfig.from_dict(side["model_config"]) == golden_video_model.config
        contract = side["input_contract"]
        assert contract["mean"] == [0.485, 0.456, 0.406] and contract["std"] == [0.229, 0.224, 0.225]
        assert contract["patch"] == 14 and contract["resize"]["input_size"] == 518
        assert side["opset"] == onnx.load(str(golden_onnx_dir / name), load_external_data=False).opset_import[0].version
        assert {"torch", "onnx", "onnxruntime", "vda-lightning"} <= set(side["versions"])
        assert side["exporter"] == "torchscript" and side["export_seconds"] > 0
        inputs, outputs = graph_io(kind, golden_video_model.config)
        assert {k: v["shape"] for k, v in side["inputs"].items()} == inputs
        assert {k: v["shape"] for k, v in side["outputs"].items()} == outputs
        expected = {"video": ["batch", "frames", "h", "w"], "encoder": ["n", "h", "w"],
                    "head": ["batch", "frames", "h", "w"], "stream": ["batch", "h", "w", "context"]}[kind]
        assert list(side["dynamic_axes"]) == expected
        checks = side["export_check"]
        assert len(checks) == 2 and all(c["finite"] and c["max_rel_diff"] <= TOL for c in checks)


def test_missing_or_foreign_sidecar_is_one_line(golden_onnx_dir, tmp_path):
    (tmp_path / "encoder.onnx").symlink_to(golden_onnx_dir / "encoder.onnx")
    (tmp_path / "head.onnx").symlink_to(golden_onnx_dir / "head.onnx")
    with pytest.raises(OnnxBackendError) as e:
        OnnxRuntimeModel(tmp_path, mode="offline", device="cpu")
    assert "encoder.onnx: its sidecar encoder.onnx.json is missing" in str(e.value) and "\n" not in str(e.value)
    side = json.loads((golden_onnx_dir / "head.onnx.json").read_text())
    (tmp_path / "encoder.onnx.json").write_text(json.dumps(side))  # the head's sidecar beside the encoder
    with pytest.raises(SidecarError, match="describes another file"):
        read_sidecar(tmp_path / "encoder.onnx")
    with pytest.raises(OnnxBackendError, match=r"streaming.onnx: missing; streaming mode needs it \(export with "
                                               r"vda-export --format onnx --streaming\)"):
        OnnxRuntimeModel(tmp_path, mode="streaming", device="cpu")
    with pytest.raises(OnnxBackendError, match="no such folder"):
        OnnxRuntimeModel(tmp_path / "nowhere", device="cpu")


def test_sizes_not_multiple_of_14_are_refused(golden_onnx_dir):
    model = OnnxRuntimeModel(golden_onnx_dir, mode="offline", device="cpu")
    with pytest.raises(OnnxBackendError) as e:
        model.forward_features(torch.zeros(1, 3, 125, 168))
    assert str(e.value).endswith("encoder.onnx: input of 125x168: height and width must be multiples of 14 "
                                 "(see the sidecar's input_contract)")
    # the graph itself refuses too (its patch guard), rather than predicting 112 rows for 125
    session = make_session(golden_onnx_dir / "model.onnx", device="cpu")
    with pytest.raises(Exception, match="cannot be reshaped"):
        session.run(None, {"frames": np.zeros((1, 1, 3, 125, 168), np.float32)})


def test_exporting_an_image_model_is_refused(tmp_path):
    with pytest.raises(ExportError, match="DepthAnythingV2 is not a video model"):
        export_onnx(build_image_model("vitt"), tmp_path / "model.onnx", log=lambda _m: None)
    with pytest.raises(ExportError, match="must end in .onnx"):
        export_onnx(build_video_model("vitt"), tmp_path / "model.bin", log=lambda _m: None)
    with pytest.raises(ExportError, match="--fp16 needs --exporter torchscript"):
        export_onnx(build_video_model("vitt"), tmp_path / "model.onnx", fp16=True, exporter="dynamo",
                    log=lambda _m: None)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_fp16_export_is_finite_and_close_to_fp32(golden_video_model, cases, tmp_path):
    path = export_onnx(golden_video_model, tmp_path / "model.onnx", fp16=True, log=lambda _m: None)[0]
    side = read_sidecar(path)
    assert side["precision"] == "fp16"
    graph = onnx.load(str(path)).graph
    weights = {i.name: i.data_type for i in graph.initializer}
    assert sum(t == onnx.TensorProto.FLOAT16 for t in weights.values()) > 100  # stored in fp16
    tail = [n for n in graph.node if n.op_type == "Conv" and "output_conv2" in n.name]
    assert len(tail) == 2 and all(weights[n.input[1]] == onnx.TensorProto.FLOAT for n in tail)  # fp32 tail
    model = OnnxRuntimeModel(path, mode="video", device="cpu")
    errors = {}
    for case in "abc":
        out = model(cases[f"{case}.input"])
        assert out.dtype == np.float32 and np.isfinite(out).all()
        errors[case] = rel_err(out, cases[f"{case}.output"])
    assert max(errors.values()) <= 1e-2, errors
    print(f"fp16 ONNX (CPU onnxruntime) vs golden fp32: {errors}")


def test_execution_providers_best_first():
    from vda_lightning.deploy.ort_backend import select_providers

    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers("auto", gpu[::-1]) == gpu
    assert select_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == gpu[1:]
    assert select_providers("cpu", gpu) == ["CPUExecutionProvider"]
    assert select_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(OnnxBackendError, match="--device cuda: this onnxruntime has no CUDA or TensorRT"):
        select_providers("cuda", ["CPUExecutionProvider"])


def test_a_failed_check_leaves_nothing_behind(tmp_path, monkeypatch):
    """The export-time check is real: with a zero tolerance it fails, and the file never appears."""
    from vda_lightning.deploy import onnx_export

    torch.manual_seed(0)
    model = build_video_model("vitt").eval()
    monkeypatch.setitem(onnx_export.CHECK_TOLERANCE, "fp32", 0.0)
    with pytest.raises(ExportError) as e:
        export_onnx(model, tmp_path / "model.onnx", parts=True, whole=False, log=lambda _m: None)
    assert str(e.value).startswith(f"{tmp_path / 'encoder.onnx'}: tokens_")
    assert "differs from PyTorch by" in str(e.value) and "tolerance 0e+00" in str(e.value)
    assert not list(tmp_path.iterdir())  # no file, no sidecar, no temporary


@pytest.mark.slow
def test_dynamo_exporter_keeps_the_position_embedding_dynamic(tmp_path):
    """torch's dynamo exporter on the encoder's tokenizer (patchify + pos_embed_graph): H and W stay symbolic,
    518x518 keeps the stored table. The whole-model dynamo export is measured by evaluation/scripts/deploy_parity.py
    (1-3 minutes for vits here, too slow for the suite)."""
    import warnings

    from torch.export import Dim

    from vda_lightning.deploy.graphs import export_mode

    model = build_video_model("vitt").eval()

    class Tokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = model.pretrained

        def forward(self, x):
            return self.encoder.tokens(x)

    h, w = Dim("h", min=1, max=128), Dim("w", min=1, max=128)
    with export_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(Tokens().eval(), (torch.randn(1, 3, 42, 56),), dynamo=True, input_names=["x"],
                                    dynamic_shapes=({2: 14 * h, 3: 14 * w},), verbose=False)
    program.save(str(tmp_path / "tokens.onnx"))
    session = make_session(tmp_path / "tokens.onnx", device="cpu")
    for size in [(42, 56), (126, 168), (518, 518), (280, 518)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            ref = model.pretrained.tokens(x).numpy()
        out = session.run(None, {"x": x.numpy()})[0]
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max(), size
