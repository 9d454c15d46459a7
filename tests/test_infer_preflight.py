"""Checks before weight (issue 28): `vda infer` refuses what its command line and the files' own records rule out
before torch is imported or a model loaded; the kind probe's verdict is cached by the file's sha256; the NaN/Inf
weight scan names the bad tensor; the streaming runner's read-ahead keeps the golden maps."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None)

# One process runs every refusal through `vda`'s dispatcher, then says whether torch was ever imported.
PROBE = """
import contextlib, io, json, sys
from vda_lightning.cli import main
report = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    report.append([code, err.getvalue().splitlines()])
print(json.dumps({"runs": report, "torch": "torch" in sys.modules}))
"""


def test_refusals_come_in_one_line_without_importing_torch(tiny_checkpoint, golden_dir, tmp_path):
    empty = tmp_path / "frames"  # a folder input: it exists, so only the checkpoint's record can refuse it
    empty.mkdir()
    named = tmp_path / "video_depth_anything_vitt.safetensors"  # a published relative name, no metadata
    named.symlink_to(golden_dir / "vda_vits_random.safetensors")
    out = ["--output-dir", str(tmp_path / "out")]
    cases = [
        (["infer", "nope.mp4", "--checkpoint", str(golden_dir / "vda_vits_random.safetensors")], 1,
         "vda infer: error: nope.mp4: no such file or directory"),
        (["infer", "nope.mp4"], 1, "vda infer: error: nope.mp4: no such file or directory"),  # before the Hub
        (["infer", str(empty), "--checkpoint", str(tiny_checkpoint), "--save", "ply", *out], 2,
         f"vda infer: error: {tiny_checkpoint}: --save ply needs a metric model (this one predicts relative "
         "disparity)"),
        (["infer", str(empty), "--checkpoint", str(named), "--save", "npz,ply", *out], 2,
         f"vda infer: error: {named}: --save ply needs a metric model (this one predicts relative disparity; "
         "pass --metric if it predicts metres)"),
        (["infer", str(empty), "--checkpoint", str(tiny_checkpoint), "--metric", *out], 2,
         f"vda infer: error: {tiny_checkpoint}: its metadata says it is a relative disparity model; --metric cannot "
         "override what the file records (it stands in only for a file that does not say): drop --metric"),
        (["infer", str(empty), "--checkpoint", str(tmp_path / "gone.pth"), *out], 2,
         f"vda infer: error: {tmp_path / 'gone.pth'}: no such checkpoint file"),
    ]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps([argv for argv, _, _ in cases])],
                          capture_output=True, text=True, cwd=ROOT, check=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    result = json.loads(proc.stdout)
    for (argv, code, line), (got_code, lines) in zip(cases, result["runs"]):
        assert (got_code, lines) == (code, [line]), argv
    assert result["torch"] is False  # nothing above needed the model, so nothing imported torch


def test_the_probe_runs_once_per_file_and_its_verdict_is_cached(tiny_model, tiny_checkpoint, monkeypatch, tmp_path):
    import copy

    from vda_lightning.checkpoints import kind, probe_cache, resolve_kind
    from vda_lightning.checkpoints.read import file_sha256

    monkeypatch.setenv("VDA_CACHE_DIR", str(tmp_path / "cache"))
    calls = []  # the probe itself is tested in test_checkpoints_kind.py; here only that it runs once per file
    verdict = kind.ProbeResult(None, [-0.5, 0.25, 0.1, -0.2, 0.0, 0.3, -0.1, 0.2])
    monkeypatch.setattr(kind, "probe_kind", lambda model, device="cpu": calls.append(1) or verdict)
    lines = []
    for _ in range(2):
        model = copy.deepcopy(tiny_model)
        model.kind_source = "none"
        lines.append(resolve_kind(model, path=tiny_checkpoint)[1])
    assert len(calls) == 1 and lines[0] == lines[1] and "a probe was inconclusive" in lines[0]
    cached = probe_cache.lookup(file_sha256(tiny_checkpoint))
    assert cached is not None and cached["rule"] == probe_cache.RULE and len(cached["correlations"]) == 8
    probe_cache.cache_file().write_bytes(b'{"verdicts": {"not a sha": 1}}')  # damaged: ignored, then rewritten
    model = copy.deepcopy(tiny_model)
    model.kind_source = "none"
    assert resolve_kind(model, path=tiny_checkpoint)[1] == lines[0] and len(calls) == 2
    assert probe_cache.lookup(file_sha256(tiny_checkpoint)) == cached


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=70), inner, max_size=3),
    max_leaves=12).map(lambda doc: json.dumps({"verdicts": doc}).encode())))
def test_a_cache_file_from_outside_is_read_through_its_schema_or_ignored(raw):
    from vda_lightning.checkpoints import probe_cache

    path = probe_cache.cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    found = probe_cache.lookup("0" * 64)
    assert found is None or (found["rule"] == probe_cache.RULE and found["metric"] in (True, False, None))


def _safetensors_with(meta: dict) -> bytes:
    header = json.dumps({"__metadata__": meta}).encode()
    return struct.pack("<Q", len(header)) + header


@FUZZ
@given(st.dictionaries(st.sampled_from(["metric", "encoder", "config", "format", "x"]), st.text(max_size=40),
                       max_size=4))
def test_peeking_at_any_safetensors_metadata_gives_a_kind_or_one_line(tmp_path_factory, meta):
    from vda_lightning.checkpoints import CheckpointError
    from vda_lightning.checkpoints.peek import peek_kind

    path = tmp_path_factory.mktemp("peek") / "model.safetensors"
    path.write_bytes(_safetensors_with(meta))
    try:
        hint = peek_kind(path)
    except CheckpointError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert hint.source in ("metadata", "none") and (hint.metric is None) == (hint.source == "none")


def test_peek_reads_what_the_load_reads(tiny_checkpoints):
    from vda_lightning.checkpoints.peek import peek_kind

    assert peek_kind(tiny_checkpoints["video"]).metric is False
    assert peek_kind(tiny_checkpoints["metric"]).metric is True
    assert peek_kind(tiny_checkpoints["metric"]).source == "metadata"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_the_weight_scan_names_the_first_bad_tensor(value):
    import torch

    from vda_lightning.checkpoints import CheckpointError
    from vda_lightning.checkpoints.load import check_finite_weights

    sd = {"a": torch.ones(3), "steps": torch.tensor([7]), "empty": torch.ones(0), "b": torch.zeros(2, 2),
          "c": torch.ones(4)}
    check_finite_weights(sd, Path("m.pth"))  # finite, integer and empty tensors pass
    sd["b"][1, 0] = value
    sd["c"][:2] = value
    with pytest.raises(CheckpointError, match=r"m.pth: 3 NaN/Inf weight values in 2 tensor\(s\), first b "):
        check_finite_weights(sd, Path("m.pth"))


def test_streaming_read_ahead_keeps_the_published_maps(golden_video_model, golden_dir):
    """`make_runner`'s streaming runner encodes a file's frames in groups (read_ahead): still the golden streaming
    case (a causal mode: the first 12 frames' maps are the reference's first 12, over one full and one partial
    group)."""
    import numpy as np

    from vda_lightning.inference.runners import make_runner
    from vda_lightning.inference.streaming import READ_AHEAD, StreamingRunner

    ref = np.load(golden_dir / "streaming_case.npz")
    frames = np.load(golden_dir / "long_video_case.npz")["frames"][:12]
    runner = make_runner(golden_video_model, "streaming", int(ref["input_size"]), "cpu", "fp32")
    assert runner.max_read == READ_AHEAD == 8
    out = np.stack(list(runner.run(iter(frames))))
    scale = np.abs(ref["depths"]).max()
    assert np.abs(out - ref["depths"][:12]).max() <= 1e-4 * scale  # tests/test_infer_parity.py's tolerance
    assert StreamingRunner(golden_video_model).max_read == 1  # step-by-step unless asked (bit-identical to step)
