"""Checkpoint metadata through the trust boundary (checkpoints/metadata.py): the safetensors metadata, the
`<file>.json` config sidecar, a Lightning checkpoint's `checkpoint["vda"]` (config, referenced encoder, prefix) and
`checkpoint["vda_ema"]`, each checked against its schema before use.

Hypothesis writes small real files (safetensors / torch.save of a few tensors of one tiny model) with mutated
metadata and loads them with `load_model`: the answer is a `CheckpointError` whose first line names the file (the
command line shows it as one line), never another exception — and no file is opened beyond the one named and its
sidecar, except a referenced encoder whose sha256 matches (an audit hook records every `open`).
"""
from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from safetensors.torch import save_file
from test_trust_deploy import ACTIONS, apply, json_values

from vda_lightning import CheckpointError, load_model, save_model
from vda_lightning.checkpoints import file_sha256
from vda_lightning.checkpoints.metadata import ema_state
from vda_lightning.cli.errors import describe
from vda_lightning.export import main as export_main
from vda_lightning.models.configs import MODEL_CONFIGS

FUZZ = settings(max_examples=100, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SMALL_KEYS = ("pretrained.cls_token", "head.projects.0.weight", "head.scratch.output_conv2.2.bias")
SECRET = "TOPSECRET line of a file nobody named"

OPENED: list[str] = []
AUDITING = [False]


def _audit(event: str, args) -> None:  # every Python-level open while a check runs (safetensors' own is in Rust)
    if AUDITING[0] and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def load_answer(path: Path):
    """load_model(path): the model, or the CheckpointError it raised, checked to name the file in its first line
    (a report of keys that do not fit keeps its details on further lines; the command shows one line), and the
    files opened meanwhile."""
    OPENED.clear()
    AUDITING[0] = True
    try:
        out = load_model(path)
    except CheckpointError as e:
        out = e
        text = str(e)
        first = text.splitlines()[0]
        assert first.startswith(str(path)), text
        assert "\n" not in text or "does not fit" in first, text
        assert "\n" not in describe(e)
        if currently_in_test_context():  # what the fuzzing hit (pytest --hypothesis-show-statistics)
            event(first[len(str(path)) + 2:].replace(str(path.parent), "")[:48])
    finally:
        AUDITING[0] = False
    return out, list(OPENED)


# -- small real files ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def place(tiny_model, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ckpt_trust")
    (root / "outside").mkdir()
    secret = root / "outside" / "secret.txt"
    secret.write_text(SECRET + "\n")
    fifo = root / "outside" / "fifo"
    os.mkfifo(fifo)
    encoder = save_model(tiny_model, root / "init.safetensors")  # a genuine referenced encoder
    sd = tiny_model.state_dict()
    return {"root": root, "secret": secret, "fifo": fifo, "encoder": encoder, "encoder_sha": file_sha256(encoder),
            "secret_sha": file_sha256(secret), "small": {k: sd[k].clone() for k in SMALL_KEYS},
            "config": MODEL_CONFIGS["vitt"].to_dict()}


def mutated(base, ops):
    return apply(base, ops) if ops else copy.deepcopy(base)


ops = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(ACTIONS), json_values), max_size=3)
words = st.sampled_from(["vitt", "vits", "vitz", "true", "false", "TRUE", "1", "", "{}", "[1, 2]", "null"]) | st.text(
    max_size=16)


# -- safetensors metadata -----------------------------------------------------------------------------------------

@FUZZ
@given(encoder=st.none() | words, metric=st.none() | words, config_ops=st.none() | ops, raw_config=st.none() | words,
       extra=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2))
@example(encoder=None, metric=None, config_ops=None, raw_config="vits", extra={})                 # a string config
@example(encoder="vitz", metric=None, config_ops=None, raw_config=None, extra={})                 # unknown encoder
@example(encoder=None, metric=None, config_ops=[(5, "huge", None)], raw_config=None, extra={})    # embed_dim 1e30
@example(encoder=None, metric="maybe", config_ops=[], raw_config=None, extra={})
@example(encoder=None, metric=None, config_ops=None, raw_config="[" * 3000, extra={})
def test_safetensors_metadata_is_checked_before_use(place, encoder, metric, config_ops, raw_config, extra):
    meta = {"format": "pt", **extra}
    for key, value in (("encoder", encoder), ("metric", metric)):
        if value is not None:
            meta[key] = value
    if config_ops is not None:
        meta["config"] = json.dumps(mutated(place["config"], config_ops))
    elif raw_config is not None:
        meta["config"] = raw_config
    path = place["root"] / "meta.safetensors"
    save_file(place["small"], str(path), metadata=meta)
    out, _ = load_answer(path)
    assert isinstance(out, CheckpointError)  # three tensors never make a model


# -- the <file>.json config sidecar -------------------------------------------------------------------------------

@FUZZ
@given(config_ops=ops, raw=st.none() | st.binary(max_size=64))
@example(config_ops=[], raw=b"\xff\xfe")
@example(config_ops=[(0, "set", "vits")], raw=None)
@example(config_ops=[(7, "delete", None)], raw=None)      # a config without layer_idx
@example(config_ops=[(9, "float", None)], raw=None)       # features 32.5
def test_config_sidecar_is_checked_before_use(place, config_ops, raw):
    path = place["root"] / "model.pth"
    if not path.exists():
        torch.save(place["small"], path)
    side = Path(str(path) + ".json")
    side.write_bytes(raw if raw is not None else json.dumps(mutated(place["config"], config_ops)).encode())
    out, _ = load_answer(path)
    assert isinstance(out, CheckpointError)
    if not str(out).startswith(f"{path}: does not fit"):
        assert str(side) in str(out)  # a sidecar problem names the sidecar


# -- Lightning checkpoint["vda"] --------------------------------------------------------------------------------

SOURCES = ("encoder", "secret", "fifo", "root", "relative", "missing")  # what encoder_source.path names
SHAS = ("encoder_sha", "secret_sha", "zeros", "short", "upper")


def source_path(place, which: str) -> str:
    return {"encoder": str(place["encoder"]), "secret": str(place["secret"]), "fifo": str(place["fifo"]),
            "root": str(place["root"]), "relative": "init.safetensors",
            "missing": str(place["root"] / "gone.safetensors")}[which]


def source_sha(place, which: str):
    return {"encoder_sha": place["encoder_sha"], "secret_sha": place["secret_sha"], "zeros": "0" * 64,
            "short": "abc", "upper": place["encoder_sha"].upper()}[which]


torch_values = json_values | st.tuples(st.integers(), st.text(max_size=4)) | st.builds(torch.zeros, st.integers(0, 3))


@FUZZ
@given(info_ops=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(ACTIONS), torch_values), max_size=2),
       source=st.none() | st.tuples(st.sampled_from(SOURCES), st.sampled_from(SHAS)),
       drop_sha=st.booleans(), key=st.none() | st.sampled_from([3, b"model.head.x", ("model", 1), "none"]))
@example(info_ops=[], source=("secret", "zeros"), drop_sha=False, key=None)   # any path, a wrong sha
@example(info_ops=[], source=("secret", "zeros"), drop_sha=True, key=None)    # any path, no sha: read before
@example(info_ops=[], source=("fifo", "zeros"), drop_sha=True, key=None)
@example(info_ops=[], source=("relative", "encoder_sha"), drop_sha=False, key=None)
@example(info_ops=[], source=("encoder", "encoder_sha"), drop_sha=False, key=None)  # the genuine reference
@example(info_ops=[], source=("encoder", "encoder_sha"), drop_sha=False, key=3)
def test_lightning_vda_entry_is_checked_and_reads_only_a_verified_encoder(place, info_ops, source, drop_sha, key):
    info = {"config": place["config"], "prefix": "model.", "encoder_source": None}
    if source is not None:
        info["encoder_source"] = {"path": source_path(place, source[0]), "sha256": source_sha(place, source[1])}
        if drop_sha:
            del info["encoder_source"]["sha256"]
    info = mutated(info, info_ops)
    state = {"model." + k: v for k, v in place["small"].items() if k.startswith("head.")}
    if key is not None:
        state[None if key == "none" else key] = torch.zeros(1)
    path = place["root"] / "last.ckpt"
    torch.save({"state_dict": state, "epoch": 1, "vda": info}, path)
    out, opened = load_answer(path)
    assert isinstance(out, CheckpointError)
    named = info.get("encoder_source") if isinstance(info, dict) else None
    verified = isinstance(named, dict) and named.get("sha256") in (place["encoder_sha"], place["secret_sha"])
    for other in (place["secret"], place["fifo"], place["encoder"]):
        reads = opened.count(str(other))
        if reads:  # only the file the checkpoint names as its encoder, hashed first, read on only when it matches
            assert isinstance(named, dict) and named.get("path") == str(other), (other, named)
            assert verified or reads == 1, (other, named, opened)
    if SECRET in str(out):
        assert verified and named.get("sha256") == place["secret_sha"]


def test_a_checkpoint_cannot_make_us_read_a_file_it_names(place, tiny_model, capsys):
    """Before: an `encoder_source` without sha256 was opened and sniffed as it was, and its first line quoted in the
    error. Now the sha256 is required, and the file is hashed (never parsed or quoted) before anything else."""
    head = {"model." + k: v for k, v in tiny_model.state_dict().items() if k.startswith("head.")}
    path = place["root"] / "names_a_file.ckpt"
    cases = {
        "no sha256": ({"path": str(place["secret"])}, "encoder_source.sha256: Field required"),
        "wrong sha256": ({"path": str(place["secret"]), "sha256": "0" * 64}, "changed (sha256 mismatch)"),
        "a FIFO": ({"path": str(place["fifo"]), "sha256": "0" * 64}, "is a FIFO, not a regular file"),
        "a folder": ({"path": str(place["root"]), "sha256": "0" * 64}, "is a folder, not a file"),
        "a relative path": ({"path": "init.safetensors", "sha256": place["encoder_sha"]}, "is not an absolute path"),
    }
    for name, (source, message) in cases.items():
        torch.save({"state_dict": head, "vda": {"config": place["config"], "prefix": "model.",
                                                "encoder_source": source}}, path)
        out, opened = load_answer(path)
        assert isinstance(out, CheckpointError) and message in str(out), (name, out)
        assert SECRET not in str(out) and opened.count(str(place["secret"])) <= 1, (name, opened)
        assert export_main([str(path), "--output", str(place["root"] / "x.safetensors")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and str(path) in err, (name, err)
    assert not (place["root"] / "x.safetensors").exists()


def test_a_config_that_would_allocate_for_ever_is_refused_before_building(place):
    for config in (dict(place["config"], features=10**7), dict(place["config"], embed_dim=1 << 16),
                   dict(place["config"], depth=24), dict(place["config"], encoder="vitl")):
        path = place["root"] / "big.ckpt"
        torch.save({"state_dict": {"model.head.x": torch.zeros(1)}, "vda": {"config": config}}, path)
        out, _ = load_answer(path)
        assert isinstance(out, CheckpointError) and "checkpoint['vda']: config" in str(out), out


# -- a checkpoint missing a module (issue 24, POOR) ---------------------------------------------------------------

def test_a_missing_module_is_named_in_the_one_line(tmp_path, tiny_model, capsys):
    sd = {k: v for k, v in tiny_model.state_dict().items() if ".motion_modules." not in k}
    path = tmp_path / "no_temporal.pth"
    torch.save(sd, path)
    assert export_main([str(path), "--output", str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{path}: does not fit a Video Depth Anything vitt model: missing 112 keys (head.motion_modules.*)" in err
    sd = {k: v for k, v in tiny_model.state_dict().items() if ".motion_modules.3." not in k and
          not k.startswith("pretrained.blocks.2.")}
    sd["head.extra.weight"] = torch.zeros(3)
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert describe(e.value).startswith(f"{path}: does not fit a Video Depth Anything vitt model: missing "
                                        "42 keys (head.motion_modules.3.*, pretrained.blocks.2.*); unexpected 1 "
                                        "keys (head.extra.weight)")


# -- checkpoint["vda_ema"] ----------------------------------------------------------------------------------------

@FUZZ
@given(decay=st.one_of(st.floats(), st.integers(), st.text(max_size=4), st.none(), st.just(0.999)),
       pick=st.integers(0, 10**6), change=st.sampled_from(["none", "shape", "dtype", "nan", "name", "value", "drop"]),
       extra=st.booleans())
@example(decay=0.999, pick=0, change="none", extra=False)
@example(decay=1.5, pick=0, change="none", extra=False)
@example(decay=0.999, pick=3, change="shape", extra=False)
def test_ema_state_is_checked_before_it_is_swapped_in(place, tiny_model, decay, pick, change, extra):
    params = dict(list(tiny_model.head.named_parameters())[:8])  # a few: ema_state checks what it is given
    shadow = {n: p.detach().clone() for n, p in params.items()}
    name = list(shadow)[pick % len(shadow)]
    if change == "shape":
        shadow[name] = torch.zeros(3, 1)
    elif change == "dtype":
        shadow[name] = shadow[name].to(torch.int32)
    elif change == "nan":
        shadow[name] = shadow[name].clone().fill_(float("nan"))
    elif change == "name":
        shadow["../" + name] = shadow.pop(name)
    elif change == "value":
        shadow[name] = [1.0, 2.0]
    elif change == "drop":
        shadow.pop(name)  # a frozen parameter: the EMA leaves it out, which is fine
    state = {"decay": decay, "shadow": shadow}
    if extra:
        state["more"] = 1
    path = place["root"] / "ema.ckpt"
    try:
        checked = ema_state(state, path, params, CheckpointError)
    except CheckpointError as e:
        assert str(e).startswith(f"{path}: checkpoint['vda_ema']") and "\n" not in str(e), str(e)
    else:
        assert 0 < checked["decay"] < 1 and not extra and change in ("none", "drop")


def test_export_ema_refuses_a_bad_ema_in_one_line(place, tiny_model, tmp_path, capsys):
    params = dict(tiny_model.head.named_parameters())
    sd = {"model." + k: v for k, v in tiny_model.state_dict().items()}
    path = tmp_path / "ema.ckpt"
    shadow = {n: p.detach().clone() for n, p in params.items()}
    shadow[next(iter(shadow))] = torch.zeros(2, 2)
    torch.save({"state_dict": sd, "vda": {"config": place["config"], "prefix": "model."},
                "vda_ema": {"decay": 0.99, "shadow": shadow}}, path)
    assert export_main([str(path), "--ema", "--output", str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}: checkpoint['vda_ema']: shadow." in err and "has shape (2, 2)" in err
    assert not (tmp_path / "out.safetensors").exists()


def test_a_resumed_runs_ema_state_is_checked_before_it_is_loaded():
    """`vda fit --ckpt_path` hands `checkpoint["vda_ema"]` to the EMA callback: the same schema as `vda export
    --ema` (checkpoints/metadata.ema_state) runs first, so a tampered shadow is one CheckpointError line."""
    from types import SimpleNamespace

    import torch

    from vda_lightning.training.ema import EMACallback

    module = SimpleNamespace(model=SimpleNamespace(head=torch.nn.Linear(3, 2)))
    trainer = SimpleNamespace(ckpt_path="runs/x/checkpoints/last.ckpt")
    good = {"decay": 0.9, "shadow": {n: p.detach().clone() for n, p in module.model.head.named_parameters()}}
    callback = EMACallback(0.9)
    callback.on_load_checkpoint(trainer, module, {"vda_ema": good})
    torch.testing.assert_close(callback.ema.shadow["weight"], good["shadow"]["weight"])
    for bad, says in (({**good, "decay": 7.0}, "decay"),
                      ({**good, "shadow": {**good["shadow"], "weight": torch.zeros(5, 5)}}, "has shape (5, 5)"),
                      ({**good, "shadow": {**good["shadow"], "bias": torch.tensor([float("nan"), 0.0])}}, "NaN"),
                      ({**good, "shadow": {"evil": torch.zeros(1)}}, "head lacks")):
        with pytest.raises(CheckpointError) as e:
            EMACallback(0.9).on_load_checkpoint(trainer, module, {"vda_ema": bad})
        assert "\n" not in str(e.value) and "last.ckpt: checkpoint['vda_ema']" in str(e.value) and says in str(e.value)


@settings(max_examples=100, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(st.binary(max_size=120).map(lambda b: b"{" + b),
                        st.recursive(st.none() | st.integers() | st.text(max_size=5) | st.floats(),
                                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                         st.text(max_size=4), inner, max_size=3), max_leaves=12)
                        .map(lambda v: json.dumps({"t": {"dtype": "F32", "shape": [1], "data_offsets": v}}).encode())),
       tail=st.binary(max_size=16))
@example(header=b'{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, "4"]}}', tail=b"\x00" * 4)
@example(header=b"{" + b'"a":' * 0 + b"[" * 3000, tail=b"")
def test_a_damaged_safetensors_header_is_one_line(tmp_path_factory, header, tail):
    """The sniffer reads a safetensors header through trust.parse_json and types its offsets before comparing
    them: whatever the header holds, the reader answers with one CheckpointError line naming the file."""
    import struct

    from vda_lightning.checkpoints import read_checkpoint

    path = tmp_path_factory.mktemp("st") / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + tail)
    try:
        read_checkpoint(path)
    except CheckpointError as e:
        assert "\n" not in str(e) and str(path) in str(e)


_COUNTER_NAMES = ("skipped_nonfinite_loss", "skipped_nonfinite_grad", "metric_samples_without_K")


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(st.dictionaries(st.sampled_from(_COUNTER_NAMES) | st.text(max_size=12),
                       st.integers(-5, 2**63) | st.floats() | st.text(max_size=4) | st.none() | st.booleans(),
                       max_size=4) | st.lists(st.integers(), max_size=3) | st.text(max_size=6))
@example({"skipped_nonfinite_loss": "abc"})
@example({"skipped_nonfinite_loss": 3, "skipped_nonfinite_grad": 0})
def test_saved_training_counters_are_checked_before_a_resumed_run_adds_to_them(value):
    """`checkpoint["vda_counters"]` (what a run skipped so far) goes through checkpoints/metadata.training_counters
    before `VideoDepthModule.on_load_checkpoint` adds to it: known names, integers >= 0, else one line."""
    from vda_lightning.checkpoints.metadata import training_counters

    valid = (isinstance(value, dict) and all(
        k in _COUNTER_NAMES and type(v) is int and 0 <= v <= 1 << 62 for k, v in value.items()))
    try:
        out = training_counters(value, "runs/x/last.ckpt", CheckpointError)
    except CheckpointError as e:
        assert not valid and "\n" not in str(e) and "last.ckpt: checkpoint['vda_counters']" in str(e)
        return
    event("accepted")
    assert valid, value
    assert out == value and all(type(v) is int and v >= 0 for v in out.values())


def test_a_resumed_module_refuses_tampered_counters_and_vda_info(tiny_model):
    """The LightningModule's own hook: a good checkpoint's counters are taken over, a tampered one is one line."""
    from vda_lightning.training.module import VideoDepthModule

    module = VideoDepthModule(encoder="vitt")
    ckpt = {"state_dict": dict(module.state_dict()), "vda_counters": {"skipped_nonfinite_loss": 4}}
    module.on_load_checkpoint(copy.copy(ckpt))
    assert module.counters["skipped_nonfinite_loss"] == 4
    for key, bad, says in (("vda_counters", {"skipped_nonfinite_loss": "abc"}, "vda_counters"),
                           ("vda_counters", {"skipped_nonfinite_loss": -1}, "vda_counters"),
                           ("vda", {"prefix": "model.; rm -rf"}, "checkpoint['vda']"),
                           ("vda", {"encoder_source": {"path": "rel/enc.pth", "sha256": "0" * 64}}, "absolute")):
        with pytest.raises(CheckpointError) as e:
            module.on_load_checkpoint({**ckpt, key: bad, "state_dict": dict(module.state_dict())})
        assert "\n" not in str(e.value) and says in str(e.value), str(e.value)
