"""Weights by name and models out by name (issue 26): the real huggingface_hub client against a small Hub on
127.0.0.1 (tests/helpers/hub_server.py, `HF_ENDPOINT`), nothing monkeypatched but the environment.

The published repository `depth-anything/Video-Depth-Anything-Small` holds a published-format `.pth` (a plain
torch state dict, the authors' key layout) of the tiny `vitt` random weights under the published file name, on
`main` and, with other weights, on the revision `v1`; weights are served as the Hub serves LFS files (a 302 to
another host).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vda_lightning import load_model
from vda_lightning.checkpoints import CheckpointError, checkpoint_path, file_sha256
from vda_lightning.checkpoints.hub import PUBLISHED_MODELS, HubRef, parse_hub_name
from vda_lightning.checkpoints.hub_format import export_config_dict, read_export_config
from vda_lightning.export import main as export_main
from vda_lightning.inference.cli import main as infer_main

from tests.helpers.hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
SMALL = "depth-anything/Video-Depth-Anything-Small"
PTH = "video_depth_anything_vits.pth"


@pytest.fixture(scope="module")
def published(tmp_path_factory, tiny_model):
    """The tiny weights as the published .pth (main) and other weights (v1), plus a 2-frame PNG clip."""
    import cv2

    d = tmp_path_factory.mktemp("published")
    torch.save(tiny_model.state_dict(), d / PTH)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        older = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                 for k, v in tiny_model.state_dict().items()}
    (d / "v1").mkdir()
    torch.save(older, d / "v1" / PTH)
    clip = d / "clip"
    clip.mkdir()
    for i, f in enumerate(np.random.default_rng(0).integers(0, 256, (2, 28, 42, 3), dtype=np.uint8)):
        cv2.imwrite(str(clip / f"{i:03d}.png"), f)
    return {"local": d / PTH, "v1": d / "v1" / PTH, "clip": clip}


@pytest.fixture(scope="module")
def hub(published):
    with HubServer() as server:
        repo = server.repo(SMALL)
        server.v1 = repo.add_revision({PTH: published["v1"].read_bytes(), "README.md": b"v1\n"}, ("v1",))
        server.main = repo.add_revision({PTH: published["local"].read_bytes(), "README.md": b"# small\n"})
        yield server


@pytest.fixture
def hf_env(hub, tmp_path, monkeypatch):
    """A fresh Hugging Face cache, the local Hub as the endpoint, online."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_local_test_token")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    hub.cut_once.clear()
    hub.truncate.clear()
    return tmp_path


def infer_depths(checkpoint, clip, out: Path, capsys) -> tuple[int, np.ndarray | None, str]:
    args = [clip, "--input-size", 28, "--precision", "fp32", "--device", "cpu", "--save", "npz", "--no-progress",
            "--output-dir", out] + (["--checkpoint", checkpoint] if checkpoint else [])
    code = infer_main([str(a) for a in args])
    err = capsys.readouterr().err
    npz = out / "clip_depths.npz"
    return code, np.load(npz)["depths"] if npz.exists() else None, err


def test_short_name_and_hf_name_give_the_local_files_depth_then_offline_from_the_cache(hf_env, hub, published,
                                                                                     capsys, monkeypatch):
    code, local, _ = infer_depths(published["local"], published["clip"], hf_env / "local", capsys)
    assert code == 0 and local is not None
    code, by_name, err = infer_depths(None, published["clip"], hf_env / "default", capsys)  # no --checkpoint
    assert code == 0 and "using vda-small" in err
    np.testing.assert_array_equal(by_name, local)
    assert any(r[1].startswith("/cdn/") for r in hub.gets(PTH))  # fetched through the LFS-style redirect

    seen = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the second run: the hf:// name of the same file, from the cache
    code, offline, _ = infer_depths(f"hf://{SMALL}/{PTH}", published["clip"], hf_env / "offline", capsys)
    assert code == 0
    np.testing.assert_array_equal(offline, local)
    assert len(hub.requests) == seen  # not one request went out
    assert file_sha256("vda-small") == file_sha256(published["local"])  # what was loaded is what is hashed
    assert len(hub.gets(PTH)) == 1  # the bytes crossed once

    code, _, err = infer_depths("vda-base", published["clip"], hf_env / "none", capsys)  # offline, not cached
    lines = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and len(lines) == 1, err
    assert "depth-anything/Video-Depth-Anything-Base" in lines[0] and "video_depth_anything_vitb.pth" in lines[0]
    assert "HF_HUB_OFFLINE" in lines[0] and "hf download" in lines[0]


def test_a_revision_is_fetched_as_named_and_recorded_by_its_bytes(hf_env, hub, published):
    assert file_sha256(f"hf://{SMALL}/{PTH}@v1") == hashlib.sha256(published["v1"].read_bytes()).hexdigest()
    assert file_sha256(f"hf://{SMALL}/{PTH}") == hashlib.sha256(published["local"].read_bytes()).hexdigest()
    # a commit sha is a revision too; without a file, a published repository's file is the table's
    assert f"/snapshots/{hub.v1}/{PTH}" in str(checkpoint_path(f"hf://{SMALL}@{hub.v1}"))


def test_missing_repository_revision_and_file_are_one_line_naming_them(hf_env):
    cases = {f"hf://{SMALL}/nope.pth": ("nope.pth", "no such file"),
             f"hf://{SMALL}/{PTH}@v9": ("v9", "no revision v9"),
             "hf://nobody/nothing": ("nobody/nothing", "no such repository")}
    for name, (named, says) in cases.items():
        with pytest.raises(CheckpointError) as e:
            load_model(name)
        assert "\n" not in str(e.value) and named in str(e.value) and says in str(e.value), str(e.value)


def test_an_interrupted_transfer_resumes_and_a_short_one_caches_nothing(hf_env, hub, published):
    want = hashlib.sha256(published["local"].read_bytes()).hexdigest()
    hub.truncate.add(PTH)  # every answer stops half way under a short Content-Length
    with pytest.raises(CheckpointError) as e:
        file_sha256("vda-small")
    assert "\n" not in str(e.value) and SMALL in str(e.value) and "nothing was cached" in str(e.value)
    cache = hf_env / "hf" / "hub" / "models--depth-anything--Video-Depth-Anything-Small"
    assert not list(cache.glob("snapshots/*/*.pth")) and not [b for b in cache.glob("blobs/*")
                                                              if not b.name.endswith(".incomplete")]
    hub.truncate.clear()
    hub.cut_once.add(PTH)  # the connection drops half way once: the client resumes
    assert file_sha256("vda-small") == want
    assert not hub.cut_once  # the fault did happen


def quickstart_like_run(root: Path, model) -> Path:
    """What `vda fit --config conf/quickstart.yaml` leaves: run/checkpoints/last.ckpt (a Lightning checkpoint
    with the encoder embedded) and run/final_validation.json."""
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()}, "epoch": 1,
                "vda": {"config": model.config.to_dict(), "prefix": "model.", "encoder_source": None}}, ckpt)
    (root / "run" / "final_validation.json").write_text(json.dumps(
        {"step": 40, "before": None, "after": {"synthetic": {"abs_rel": 0.1901, "delta1": 0.6631, "sequences": 2}}}))
    return ckpt


def test_hub_export_loads_back_identically_and_pushes_to_the_hub(hf_env, hub, tiny_model, capsys):
    ckpt = quickstart_like_run(hf_env, tiny_model)
    out = hf_env / "export"
    assert export_main([str(ckpt), "--format", "hub", str(out), "--push-to-hub", "me/tiny-vda", "--private"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    x = torch.rand(1, 2, 3, 28, 42)
    with torch.no_grad():
        want = tiny_model(x)
        assert torch.equal(load_model(out)(x), want)
        assert torch.equal(load_model("hf://me/tiny-vda")(x), want)  # as pushed, fetched back
    assert hub.repos["me/tiny-vda"].private
    config = read_export_config(out / "config.json")
    assert config["encoder"] == "vitt" and config["kind"] == "relative" and config["input_contract"]["patch_size"]
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["synthetic"] and "depth-estimation" in meta["tags"]
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"abs_rel": 0.1901, "delta1": 0.6631}
    assert 'load_model("hf://me/tiny-vda")' in card


def test_an_export_config_that_disagrees_with_its_weights_is_refused(tmp_path, tiny_model):
    from vda_lightning import save_model

    save_model(tiny_model, tmp_path / "model.safetensors")
    config = export_config_dict(tiny_model)
    config["kind"], config["model_config"]["metric"] = "metric", True
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model_config differs from the one in model.safetensors"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "depth_anything"}))  # transformers': not ours
    assert load_model(tmp_path).config == tiny_model.config


def test_the_docs_name_table_is_the_table():
    text = (ROOT / "docs" / "models.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| `([^`]+)` \| `([^`]+)` \|", text, re.M)
    assert {n: (r, f) for n, r, f in rows} == {n: (m.repo, m.filename) for n, m in PUBLISHED_MODELS.items()}


_ALNUM = "abcXYZ0189"
_part = st.builds(lambda a, mid, z: a + mid + z, st.sampled_from(_ALNUM), st.text(_ALNUM + "_", max_size=10),
                  st.sampled_from(_ALNUM))
_file = st.lists(st.builds(str.__add__, st.sampled_from(_ALNUM + "_"), st.text(_ALNUM + "_.-", max_size=12)),
                 max_size=3)
_rev = st.none() | st.text(_ALNUM + "._-", min_size=1, max_size=20).filter(lambda r: r not in (".", ".."))
FUZZ = settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(_part, _part, _file, _rev)
def test_hf_names_parse_back_to_what_was_written(org, repo, parts, revision):
    ref = HubRef(f"{org}/{repo}", "/".join(parts) or None, revision)
    assert parse_hub_name(str(ref)) == ref


@FUZZ
@given(st.text(max_size=60) | st.text(max_size=40).map(lambda s: "hf://" + s))
def test_any_text_is_a_path_a_hub_name_or_one_line_refusal(text):
    try:
        ref = parse_hub_name(text)
    except CheckpointError as e:
        assert "\n" not in str(e) and text.startswith("hf://")
        return
    if ref is not None:
        assert text in PUBLISHED_MODELS or parse_hub_name(str(ref)) == ref
    else:
        assert not text.startswith("hf://")


_json = st.recursive(st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats(allow_nan=False)
                     | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=8)


@FUZZ
@given(key=st.sampled_from(["framework_version", "format_version", "architecture", "encoder", "kind", "weights",
                            "key_layout", "model_config", "input_contract", "extra"]),
       value=_json, drop=st.booleans())
def test_a_damaged_config_json_is_read_or_refused_in_one_line(tmp_path_factory, tiny_model, key, value, drop):
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    config = export_config_dict(tiny_model)
    if drop:
        config.pop(key, None)
    else:
        config[key] = value
    path.write_text(json.dumps(config))
    try:
        checked = read_export_config(path)
    except CheckpointError as e:
        assert "\n" not in str(e) and "config.json" in str(e)
        return
    assert checked is not None and checked["model_config"]["encoder"] == checked["encoder"]
