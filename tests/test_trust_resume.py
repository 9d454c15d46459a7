"""Issue 24, the training side of the trust boundary: the DataModule position saved in a checkpoint is a file's
content. A cursor or shuffle-buffer URL of `pipe:CMD` ran CMD on `vda fit --ckpt_path` (webdataset opens `pipe:`
through a shell); a validation shard's URL trained on validation data; `ranks: []`, no fingerprint, a bad rng state
or `consumed: "abc"` gave tracebacks. Now the state is checked against a schema and every URL in it against the
URLs the config expands to, before any reader opens anything: one line naming the checkpoint and the place in the
state, exit 2, nothing trained, nothing run. A state saved with other settings still resumes with a warning and a
fresh epoch. The Hypothesis test feeds mutated states to the same checker in process.
"""
from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vda_lightning.data import streams
from vda_lightning.data.datamodule import DataStateError, StreamLayout, check_state, mismatches, resume_plan

from tests.helpers.recipes import run_fit, tiny_recipe, write_config

KEY = "VideoDepthDataModule"
CURSOR = ("ranks", 0, "readers", 0, "video", 0, "cursor", "url")


# -- real vda fit runs on a tiny synthetic recipe --------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(synthetic_shards, tmp_path_factory) -> tuple[dict, Path]:
    """A real run's checkpoint at step 2 of a 5-step epoch (an open shard, a full shuffle buffer), and its recipe."""
    tmp = tmp_path_factory.mktemp("trust_resume")
    cfg = tiny_recipe(synthetic_shards, tmp / "ref", max_steps=2, every=2, workers=0)
    cfg["trainer"]["callbacks"] = []
    res = run_fit("--config", str(write_config(tmp / "fit.yaml", cfg)))
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = tmp / "ref" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)[KEY]
    cursor = state["ranks"][0]["readers"][0]["video"][0]
    assert state["ranks"][0]["consumed"] == 2 and cursor["cursor"]["open"] and len(cursor["buffer"]) == 3
    return cfg, ckpt


def tampered(ckpt: Path, out: Path, edit) -> Path:
    checkpoint = torch.load(ckpt, weights_only=True)
    edit(checkpoint[KEY])
    torch.save(checkpoint, out)
    return out


def resume_recipe(cfg: dict, tmp_path: Path, max_steps: int = 3, **data) -> Path:
    """The saved run's recipe (so the same data fingerprint) in a new run folder."""
    cfg = copy.deepcopy(cfg)
    root = tmp_path / "run"
    cfg["trainer"].update(default_root_dir=str(root), max_steps=max_steps)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(root)
    cfg["data"]["init_args"].update(data)
    return write_config(tmp_path / "resume.yaml", cfg)


def fit_in_process(capsys, *args: str) -> tuple[int, list[str], str]:
    """`vda fit ARGS` in this process: (exit status, its `error:` lines, stderr)."""
    from vda_lightning.training.cli import main

    argv, sys.argv = sys.argv, ["vda-fit", *args]
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if "error:" in line], err


def _set(path: tuple, value):
    def edit(state):
        node = state
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return edit


ATTACKS = {  # name: (edit of the saved state, the place the error line names); {shards}, {marker} filled in below
    "pipe command as the cursor url": (CURSOR, "pipe:touch {marker}; cat {shards}/train-000000.tar",
                                       "ranks.0.readers.0.video.0.cursor.url: names a URL that runs a program"),
    "pipe command in the shuffle buffer": (("ranks", 0, "readers", 0, "video", 0, "buffer", 0, 0),
                                           "pipe:touch {marker}; cat {shards}/train-000000.tar",
                                           "ranks.0.readers.0.video.0.buffer.0: names a URL that runs a program"),
    "a validation shard as the cursor url": (CURSOR, "{shards}/val-000000.tar",
                                             "ranks.0.readers.0.video.0.cursor.url: names a shard not among"),
    "ranks []": (("ranks",), [], "ranks: List should have at least 1 item"),
    "no fingerprint": (None, None, "fingerprint: Field required"),
    "a bad rng state": (("ranks", 0, "readers", 0, "rng", "state", "state"), -1,
                        "ranks.0.readers.0.rng.state.state: Input should be greater than or equal to 0"),
    'consumed "abc"': (("ranks", 0, "consumed"), "abc", "ranks.0.consumed: Input should be a valid integer"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_tampered_data_state_is_one_line_and_nothing_runs_or_trains(saved, synthetic_shards, tmp_path, capsys,
                                                                      attack):
    cfg, ckpt = saved
    path, value, says = ATTACKS[attack]
    marker = tmp_path / "PWNED"
    if isinstance(value, str):
        value = value.format(marker=marker, shards=synthetic_shards)
    edit = (lambda state: state.pop("fingerprint")) if path is None else _set(path, value)
    evil = tampered(ckpt, tmp_path / "evil.ckpt", edit)
    code, errors, err = fit_in_process(capsys, "--config", str(resume_recipe(cfg, tmp_path)), "--ckpt_path",
                                       str(evil))
    assert code == 2 and len(errors) == 1, err[-3000:]
    assert errors[0].startswith(f"vda-fit: error: {evil}: VideoDepthDataModule state: {says}"), errors[0]
    assert "Traceback" not in err
    assert not marker.exists(), "a command from the checkpoint ran"
    assert not list((tmp_path / "run").rglob("*.ckpt")), "the refused resume trained and saved"


def test_a_pipe_url_in_a_checkpoint_never_runs_under_vda_fit(saved, synthetic_shards, tmp_path):
    """The attack as a user meets it: `python -m vda_lightning fit --ckpt_path` in its own process."""
    cfg, ckpt = saved
    marker = tmp_path / "PWNED"
    evil = tampered(ckpt, tmp_path / "evil.ckpt",
                    _set(CURSOR, f"pipe:touch {marker}; cat {synthetic_shards}/train-000001.tar"))
    res = run_fit("--config", str(resume_recipe(cfg, tmp_path)), "--ckpt_path", str(evil))
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert res.returncode == 2 and len(errors) == 1, res.stderr[-3000:]
    assert f"{evil}: VideoDepthDataModule state: ranks.0.readers.0.video.0.cursor.url" in errors[0]
    assert "Traceback" not in res.stderr and "the same samples as the uninterrupted run" not in res.stderr
    assert not marker.exists()
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def test_changed_data_settings_still_resume_with_a_warning_and_a_fresh_epoch(saved, tmp_path, capsys, caplog):
    """A legitimate mismatch is no attack: another shuffle buffer size changes the fingerprint; the saved position
    (whose URLs are never opened) is dropped with the warning, and training goes on from the checkpoint's step."""
    cfg, ckpt = saved
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        code, errors, err = fit_in_process(capsys, "--config", str(resume_recipe(cfg, tmp_path, shuffle_buffer=2)),
                                           "--ckpt_path", str(ckpt))
    assert code == 0 and not errors, err[-3000:]
    assert "data settings or shard files changed" in caplog.text and "starts afresh" in caplog.text
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 3


def test_a_model_checkpoint_path_outside_the_folder_is_refused_before_lightning_deletes_it(saved, tmp_path,
                                                                                           capsys):
    """ModelCheckpoint's saved `best_model_path` is the file Lightning deletes when the next periodic checkpoint
    replaces it; `<checkpoint folder>/../../victim` passed Lightning's 'inside the folder' test."""
    cfg, ckpt = saved
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    run_ckpts = tmp_path / "run" / "checkpoints"

    checkpoint = torch.load(ckpt, weights_only=True)
    for state in checkpoint["callbacks"].values():
        state.update(dirpath=str(run_ckpts), best_model_path=f"{run_ckpts}/../../victim.txt")
    evil = tmp_path / "evil.ckpt"
    torch.save(checkpoint, evil)
    code, errors, err = fit_in_process(capsys, "--config", str(resume_recipe(cfg, tmp_path, max_steps=4)),
                                       "--ckpt_path", str(evil))
    assert code == 2 and len(errors) == 1, err[-3000:]
    assert f"{evil}: callbacks.ModelCheckpoint.best_model_path" in errors[0] and "normalized" in errors[0]
    assert victim.read_text() == "keep me"


# -- the state checker in process, under Hypothesis ------------------------------------------------------------------
WHAT = "runs/x/checkpoints/last.ckpt: VideoDepthDataModule state"
VIDEO = (("/data/a-000.tar", "/data/a-001.tar"), ("pipe:curl -s https://host/b-000.tar",))  # a configured pipe: URL
IMAGES = ("/data/img-000.tar",)
CONFIGURED = {u for src in VIDEO for u in src} | set(IMAGES)
LAYOUT = StreamLayout(fingerprint="0123456789abcdef", world_size=2, num_workers=2, epoch_length=5,
                      video_sources=VIDEO, image_urls=IMAGES, shuffle_buffer=3, image_shuffle_buffer=2)


def _source(urls: tuple[str, ...], buffered: int) -> dict:
    taken = dict.fromkeys(streams.COUNTER_NAMES, 0) | {"ok": 3}
    return {"cursor": {"started": 2, "url": urls[-1], "offset": 1, "open": True, "empty": 0},
            "buffer": [[urls[0], f"key{i}"] for i in range(buffered)], "failures": 0, "taken": taken}


def _reader(seed: int) -> dict:
    return {"steps": 2, "rng": np.random.default_rng(seed).bit_generator.state,
            "video": [_source(VIDEO[0], 3), _source(VIDEO[1], 2)], "image": _source(IMAGES, 2)}


BASE = {"version": 1, "fingerprint": LAYOUT.fingerprint, "world_size": 2, "num_workers": 2, "epoch_length": 5,
        "ranks": [{"epoch": 0, "consumed": 3, "readers": {0: _reader(0), 1: _reader(1)}},
                  {"epoch": 0, "consumed": 1, "readers": {1: _reader(2)}}]}


def _places(node, prefix=()) -> list[tuple]:
    out = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out += _places(child, prefix + (key,))
    return out


PLACES = _places(BASE)
URLS = [*sorted(CONFIGURED), "/data/val-000.tar", "pipe:touch /tmp/vda-pwned; cat /data/a-000.tar",
        "http://evil.example/a-000.tar", "s3://bucket/a-000.tar", "file:///data/a-000.tar", "/data/../data/a-000.tar",
        "", "a-000.tar"]
SCALARS = (st.none() | st.booleans() | st.integers(-(2**200), 2**200) | st.floats() | st.text(max_size=8)
           | st.sampled_from(URLS) | st.just(torch.tensor(3)) | st.binary(max_size=4))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=2)
                      | st.dictionaries(st.sampled_from(["url", "state", "open", 0, 1]), inner, max_size=2),
                      max_leaves=4)
MUTATION = st.tuples(st.sampled_from(["set", "drop", "add"]), st.sampled_from(range(len(PLACES))), VALUES)


def at(*place) -> int:
    return PLACES.index(place)


def mutate(mutations) -> dict:
    state = copy.deepcopy(BASE)
    for kind, index, value in mutations:
        place = PLACES[index]
        parent = state
        try:
            for part in place[:-1]:
                parent = parent[part]
            if kind == "set":
                parent[place[-1]] = value
            elif kind == "drop":
                del parent[place[-1]]
            elif isinstance(parent, dict):
                parent[f"extra_{index}"] = value
            else:
                parent.append(value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced this place
    return state


def _named_urls(plan_readers: dict) -> list[str]:
    urls = []
    for reader in plan_readers.values():
        for source in reader["video"] + ([reader["image"]] if reader["image"] is not None else []):
            urls += [source["cursor"]["url"]] if source["cursor"]["url"] is not None else []
            urls += [url for url, _ in source["buffer"]]
    return urls


def _restore_readers(plan: dict) -> list[str]:
    """Restore every planned reader as the training stream does (shards recorded, not opened): the URLs opened."""
    opened = []

    def no_tar(url, counters):
        opened.append(url)
        return iter(())

    with mock.patch.object(streams, "iter_tar_samples", no_tar):
        for slot, reader in plan["readers"].items():
            np.random.default_rng(0).bit_generator.state = reader["rng"]
            for urls, source in zip(LAYOUT.video_sources, reader["video"], strict=True):
                streams.SourceReader(list(urls), 0, 0, slot, 4, LAYOUT.shuffle_buffer, None, None).restore(source)
            if reader["image"] is not None:
                streams.SourceReader(list(IMAGES), 0, 0, slot, 4, LAYOUT.image_shuffle_buffer, None,
                                     None).restore(reader["image"])
    return opened


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), rank=st.integers(0, 1))
@example(mutations=[("set", at(*CURSOR), "pipe:touch /tmp/vda-pwned; cat /data/a-000.tar")], rank=0)
@example(mutations=[("set", at("ranks", 1, "readers", 1, "image", "buffer", 1, 0), "http://evil.example/x.tar")],
         rank=0)
@example(mutations=[("set", at(*CURSOR), "/data/val-000.tar")], rank=0)
@example(mutations=[("set", at("ranks"), [])], rank=0)
@example(mutations=[("drop", at("fingerprint"), None)], rank=0)
@example(mutations=[("set", at("ranks", 0, "readers", 0, "rng"), {"bit_generator": "MT19937"})], rank=0)
@example(mutations=[("set", at("ranks", 0, "consumed"), "abc")], rank=0)
@example(mutations=[("set", at("ranks", 0, "readers", 0, "video"), [])], rank=0)
@example(mutations=[("set", at("ranks", 0, "readers", 0, "video", 0, "cursor", "open"), True),
                    ("set", at("ranks", 0, "readers", 0, "video", 0, "cursor", "url"), None)], rank=0)
@example(mutations=[("set", at("fingerprint"), "fedcba9876543210"), ("set", at(*CURSOR), "pipe:rm -rf ~")], rank=1)
@example(mutations=[("set", at("version"), 2)], rank=0)
@example(mutations=[("set", at("version"), True)], rank=0)
@example(mutations=[("set", at("ranks", 0, "consumed"), 2**200)], rank=0)
def test_mutated_states_are_refused_in_one_line_or_name_only_configured_shards(mutations, rank):
    state = mutate(mutations)
    try:
        checked = check_state(state, WHAT)
        epoch, plan = resume_plan(checked, LAYOUT, rank, 0, WHAT) if checked is not None else (0, None)
    except DataStateError as e:
        message = str(e)
        assert message.startswith(WHAT + ": ") and "\n" not in message, message
        return
    if checked is None or mismatches(checked, LAYOUT):
        assert plan is None  # nothing of a state that cannot continue reaches a reader
        return
    for r in checked["ranks"]:  # accepted: every URL anywhere in it is a configured one ...
        assert set(_named_urls(r["readers"])) <= CONFIGURED
    if plan is not None:  # ... and restoring the readers from it raises nothing and opens only configured shards
        assert set(_restore_readers(plan)) <= CONFIGURED


def test_an_int_too_long_to_print_is_one_line():
    state = mutate([("set", at("ranks", 0, "consumed"), 10**5000)])
    with pytest.raises(DataStateError, match="ranks.0.consumed"):
        check_state(state, WHAT)


def test_the_readers_themselves_never_open_an_unconfigured_shard():
    """Defence in depth: a reader restores only its own shards, whatever reaches it."""
    opened = []
    with mock.patch.object(streams, "iter_tar_samples", lambda url, counters: opened.append(url) or iter(())):
        source = _source(VIDEO[0], 1)
        source["cursor"]["url"] = "pipe:touch /tmp/vda-pwned"
        with pytest.raises(DataStateError, match="saved cursor"):
            streams.SourceReader(list(VIDEO[0]), 0, 0, 0, 1, 3, None, None).restore(source)
        source = _source(VIDEO[0], 1)
        source["buffer"][0][0] = "/data/val-000.tar"
        with pytest.raises(DataStateError, match="saved shuffle buffer"):
            streams.SourceReader(list(VIDEO[0]), 0, 0, 0, 1, 3, None, None).restore(source)
    assert set(opened) <= CONFIGURED
