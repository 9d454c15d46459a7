"""Export sidecars through the trust boundary (deploy/schema.py): the attacks of issue 24 on `vda infer --backend
onnxruntime`, and Hypothesis fuzzing of `read_sidecar` and of the onnxruntime backend's sidecar check with mutated
sidecar documents (every field: wrong types, huge numbers, missing keys, strings for numbers, extra keys) and raw
bytes. Each answers with one line naming the file (`SidecarError` / `OnnxBackendError`, exit 2 on the command
line), never another exception; nothing is written.

The fuzzed folders hold tiny stand-in graph files (the sidecar is checked before onnxruntime sees a graph, and a
stand-in that gets that far is refused by onnxruntime in one line); the graph-role attacks use the session's real
export (`golden_onnx_dir`, shared with tests/test_deploy_*.py).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vda_lightning.deploy.onnx_export import sidecar_info
from vda_lightning.deploy.ort_backend import OnnxBackendError, OnnxRuntimeModel, check_session
from vda_lightning.deploy.sidecar import SidecarError, read_sidecar, sidecar_path, write_sidecar
from vda_lightning.deploy.signatures import FILE_NAMES, graph_io, kind_of
from vda_lightning.inference.cli import main as infer_main
from vda_lightning.models.configs import MODEL_CONFIGS

FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
KINDS = tuple(FILE_NAMES)
MODE_OF = {"video": "video", "encoder": "offline", "head": "offline", "stream": "streaming"}


def one_line(exc: BaseException, *names: str) -> str:
    text = str(exc)
    assert "\n" not in text and text.strip(), repr(text)
    assert any(n in text for n in names), (names, text)
    return text


# -- a folder of stand-in graphs with genuine sidecars ------------------------------------------------------------

@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    """model.onnx, encoder.onnx, head.onnx, streaming.onnx: a few bytes each, with the sidecars the exporter writes
    for a vitt model (sidecar_info + write_sidecar: genuine sha256, schema-valid)."""
    folder = tmp_path_factory.mktemp("standin")
    for kind, name in FILE_NAMES.items():
        (folder / name).write_bytes(b"stand-in for the " + kind.encode() + b" graph")
        check = {"sizes": {"batch": 1, "h": 3}, "inputs": {"frame": [1, 3, 42, 42]}, "max_rel_diff": 1e-6,
                 "worst_output": "depth", "finite": True}
        write_sidecar(folder / name, sidecar_info(kind, MODEL_CONFIGS["vitt"], source={
            "path": "/models/tiny.safetensors", "sha256": "ab" * 32}, seconds=1.5, checks=[check]))
    return folder


@pytest.fixture(scope="module")
def base_docs(standin) -> dict[str, dict]:
    return {kind: json.loads(sidecar_path(standin / name).read_text()) for kind, name in FILE_NAMES.items()}


def test_the_stand_in_sidecars_are_valid(standin):
    for kind, name in FILE_NAMES.items():
        assert read_sidecar(standin / name, kind=kind)["graph"] == kind
    with pytest.raises(OnnxBackendError) as e:  # valid sidecars: onnxruntime is the first to see the bytes
        OnnxRuntimeModel(standin, mode="offline", device="cpu")
    one_line(e.value, "encoder.onnx: onnxruntime cannot load it")


# -- mutations -----------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["vitt", "vits", "stream", "fp16", "1", "1e7", "../x", "a" * 64]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)
ACTIONS = ("delete", "set", "stringify", "huge", "float", "negate", "wrap", "extra")


def node_paths(doc, prefix=()):
    """Every place in a JSON document (dict keys, list indices), parents first."""
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield from node_paths(value, (*prefix, key))


def apply(doc, ops):
    """The document with each (place picker, action, value) applied; pickers index `node_paths` modulo its length."""
    doc = copy.deepcopy(doc)
    for pick, action, value in ops:
        places = list(node_paths(doc))
        path = places[pick % len(places)]
        if not path:
            doc = value if action == "set" else doc
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key, old = path[-1], parent[path[-1]]
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "set":
            parent[key] = value
        elif action == "stringify":
            parent[key] = json.dumps(old) if not isinstance(old, str) else old + "x"
        elif action == "huge":
            parent[key] = 10**30 if not isinstance(old, float) else 1e300
        elif action == "float" and isinstance(old, int) and not isinstance(old, bool):
            parent[key] = float(old) + 0.5
        elif action == "negate" and isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[key] = -old - 1
        elif action == "wrap":
            parent[key] = [old]
        elif action == "extra" and isinstance(old, dict):
            old["unexpected"] = value
    return doc


ops = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(ACTIONS), json_values), min_size=1, max_size=3)
ISSUE_24 = [  # (kind, [(field, value)]): the issue's findings, pinned
    ("encoder", [("version", "abc")]),
    ("encoder", [("model_config", "vits")]),
    ("encoder", [("model_config", {"encoder": "vitz"})]),
    ("stream", [("model_config.features", 1e7)]),
    ("stream", [("model_config.features", 10**7)]),
    ("stream", [("inputs.cache_tm3_attn0.shape", ["batch*2h*2w", "context", 10**7])]),
    ("encoder", [("model_config.layer_idx", None)]),
    ("encoder", [("input_contract", None)]),
    ("head", [("graph", "encoder"), ("file", "encoder.onnx")]),
    ("encoder", [("version", 2)]),
    ("encoder", [("version", True)]),
    ("encoder", [("sha256", "../../etc/passwd")]),
    ("encoder", [("input_contract.contract.mean", [0.5, 0.5, 0.5])]),
]


def set_field(doc: dict, dotted: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


def write_mutated(folder: Path, kind: str, doc) -> Path:
    side = sidecar_path(folder / FILE_NAMES[kind])
    side.write_text(json.dumps(doc))
    return side


def check_read(folder: Path, kind: str, doc, base: dict) -> None:
    """read_sidecar on the mutated sidecar: a checked document of the right graph, or one line naming a file."""
    side = write_mutated(folder, kind, doc)
    graph = folder / FILE_NAMES[kind]
    try:
        out = read_sidecar(graph, kind=kind)
    except SidecarError as e:
        one_line(e, str(side), str(graph))
    else:
        assert out["graph"] == kind and out["sha256"] == base["sha256"]
        assert out["model_config"]["encoder"] in MODEL_CONFIGS


@pytest.fixture
def scratch(standin, tmp_path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(standin, folder)
    return folder


@pytest.mark.parametrize("kind,fields", ISSUE_24)
def test_issue_24_sidecar_attacks_are_one_line(scratch, base_docs, kind, fields):
    doc = base_docs[kind]
    for field, value in fields:
        doc = set_field(doc, field, value)
    side = write_mutated(scratch, kind, doc)
    with pytest.raises(SidecarError) as e:
        read_sidecar(scratch / FILE_NAMES[kind], kind=kind)
    one_line(e.value, str(side), str(scratch / FILE_NAMES[kind]))


@FUZZ
@given(kind=st.sampled_from(KINDS), mutations=ops)
@example(kind="encoder", mutations=[(0, "set", [1, 2])])
@example(kind="stream", mutations=[(1, "set", "abc")])
def test_read_sidecar_answers_mutated_documents_in_one_line(scratch, base_docs, kind, mutations):
    check_read(scratch, kind, apply(base_docs[kind], mutations), base_docs[kind])


@FUZZ
@given(kind=st.sampled_from(KINDS), data=st.binary(max_size=200), cut=st.integers(0, 5000))
@example(kind="head", data=b"", cut=0)
@example(kind="head", data=b"\xff\xfe{", cut=0)
@example(kind="head", data=b"[" * 5000, cut=0)
@example(kind="head", data=b'{"format": "vda-lightning-export", "version": NaN}', cut=0)
def test_read_sidecar_answers_raw_bytes_in_one_line(scratch, base_docs, kind, data, cut):
    """Random bytes, and the genuine sidecar cut short or with bytes spliced in."""
    graph = scratch / FILE_NAMES[kind]
    genuine = json.dumps(base_docs[kind]).encode()
    for raw in (data, genuine[:cut] + data, data * 2000):
        sidecar_path(graph).write_bytes(raw)
        try:
            read_sidecar(graph, kind=kind)
        except SidecarError as e:
            one_line(e, str(sidecar_path(graph)))


@settings(max_examples=100, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), mutations=ops)
@example(kind="stream", mutations=[(0, "set", {"format": "vda-lightning-export", "version": 1})])
def test_the_backend_answers_mutated_sidecars_in_one_line(scratch, base_docs, kind, mutations):
    """OnnxRuntimeModel over a folder with one mutated sidecar: OnnxBackendError naming a file of the folder (the
    sidecar, or a stand-in graph onnxruntime refuses once every sidecar passed)."""
    write_mutated(scratch, kind, apply(base_docs[kind], mutations))
    target = scratch / FILE_NAMES["video"] if kind == "video" else scratch
    with pytest.raises(OnnxBackendError) as e:
        OnnxRuntimeModel(target, mode=MODE_OF[kind], device="cpu")
    one_line(e.value, str(scratch))


# -- vda infer --backend onnxruntime -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.full((42, 56, 3), 40 * i, np.uint8))
    return folder


@pytest.mark.parametrize("kind,fields", [case for case in ISSUE_24 if case[0] != "head"])
def test_vda_infer_refuses_a_tampered_sidecar_in_one_line(scratch, base_docs, frames, tmp_path, capsys, kind,
                                                           fields):
    doc = base_docs[kind]
    for field, value in fields:
        doc = set_field(doc, field, value)
    side = write_mutated(scratch, kind, doc)
    out = tmp_path / "out"
    code = infer_main([str(frames), "--backend", "onnxruntime", "--onnx", str(scratch), "--mode",
                       "streaming" if kind == "stream" else "offline", "--output-dir", str(out), "--device", "cpu"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("vda-infer: error: "), err
    assert str(side) in err[0] and "Traceback" not in err[0]
    assert not out.exists() or not any(out.rglob("*"))


# -- what a graph file really is -----------------------------------------------------------------------------------

def fake_session(kind: str, config, **changes):
    inputs, outputs = graph_io(kind, config)
    inputs, outputs = {**inputs, **changes}, dict(outputs)

    def spec(items):
        return [SimpleNamespace(name=n, shape=[d if isinstance(d, int) else str(d) for d in dims])
                for n, dims in items.items()]

    return SimpleNamespace(get_inputs=lambda: spec(inputs), get_outputs=lambda: spec(outputs))


def test_a_graph_is_known_by_its_input_and_output_names():
    vits = MODEL_CONFIGS["vits"]
    for kind in KINDS:
        inputs, outputs = graph_io(kind, vits)
        assert kind_of(list(inputs), list(outputs), vits) == kind
        check_session(fake_session(kind, vits), kind, vits, Path("x") / FILE_NAMES[kind])
    with pytest.raises(OnnxBackendError) as e:
        check_session(fake_session("head", vits), "encoder", vits, Path("d/encoder.onnx"))
    assert one_line(e.value, "d/encoder.onnx") == ("d/encoder.onnx: is the head graph (head.onnx), not the encoder "
                                                   "graph its name and sidecar say; re-export with vda export "
                                                   "--format onnx")
    with pytest.raises(OnnxBackendError) as e:  # a vits sidecar on a vitb graph: the fixed sizes differ
        check_session(fake_session("encoder", MODEL_CONFIGS["vitb"]), "encoder", vits, Path("d/encoder.onnx"))
    one_line(e.value, "d/encoder.onnx: tokens_0 axis 2 is 768, not 384")


def swap_graphs(source: Path, folder: Path, fix_hashes: bool) -> None:
    """encoder.onnx and head.onnx exchanged; with `fix_hashes`, each sidecar re-stamped with the sha256 of the
    file now under its name (as a careless re-export or an attacker would leave them)."""
    folder.mkdir()
    for name, other in (("encoder.onnx", "head.onnx"), ("head.onnx", "encoder.onnx")):
        (folder / name).symlink_to(source / other)
        doc = json.loads(sidecar_path(source / name).read_text())
        if fix_hashes:
            doc["sha256"] = json.loads(sidecar_path(source / other).read_text())["sha256"]
        sidecar_path(folder / name).write_text(json.dumps(doc))


def test_swapped_encoder_and_head_are_named_in_one_line(golden_onnx_dir, frames, tmp_path, capsys):
    swap_graphs(golden_onnx_dir, tmp_path / "plain", fix_hashes=False)
    swap_graphs(golden_onnx_dir, tmp_path / "restamped", fix_hashes=True)
    expected = {"plain": "encoder.onnx.json: describes another file (sha256 differs from encoder.onnx)",
                "restamped": "encoder.onnx: is the head graph (head.onnx), not the encoder graph its name and "
                             "sidecar say"}
    for folder, message in expected.items():
        out = tmp_path / f"out_{folder}"
        code = infer_main([str(frames), "--backend", "onnxruntime", "--onnx", str(tmp_path / folder),
                           "--output-dir", str(out), "--device", "cpu"])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and message in err[0], err
        assert not out.exists() or not any(out.rglob("*"))
    moved = tmp_path / "moved"  # the head graph with its own sidecar, under the encoder's name
    moved.mkdir()
    (moved / "encoder.onnx").symlink_to(golden_onnx_dir / "head.onnx")
    shutil.copyfile(sidecar_path(golden_onnx_dir / "head.onnx"), sidecar_path(moved / "encoder.onnx"))
    with pytest.raises(SidecarError) as e:
        read_sidecar(moved / "encoder.onnx", kind="encoder")
    one_line(e.value, f"{moved / 'encoder.onnx'}: is the head graph of an export (its sidecar says head), not the "
                      "encoder graph expected here")
    with pytest.raises(SidecarError) as e:  # no role asked for: the name alone gives it away
        read_sidecar(moved / "encoder.onnx")
    one_line(e.value, "is the head graph head.onnx (its sidecar says so) under another name")


def test_a_fifo_or_folder_in_place_of_a_sidecar_or_graph_is_one_line(scratch):
    side = sidecar_path(scratch / "head.onnx")
    side.unlink()
    os.mkfifo(side)
    with pytest.raises(SidecarError) as e:  # a FIFO would block the reader for ever
        read_sidecar(scratch / "head.onnx", kind="head")
    one_line(e.value, f"{side}: export sidecar is a FIFO")
    (scratch / "encoder.onnx").unlink()
    (scratch / "encoder.onnx").mkdir()
    with pytest.raises(OnnxBackendError) as e:
        OnnxRuntimeModel(scratch, mode="offline", device="cpu")
    one_line(e.value, "encoder.onnx: exported file is a folder")
