"""Logger set-up: mode resolution, credentials, fallback loggers, and the offline run reader."""

import socket
import struct

import pytest
from lightning.pytorch.loggers import CSVLogger

from vda_lightning.dashboards import loggers as dsetup
from vda_lightning.dashboards.offline_reader import BLOCK, iter_payloads


def _never(*_):
    raise AssertionError("network probe must not run here")


@pytest.mark.parametrize("requested, env, creds, probe, expected", [
    ("auto", {}, False, _never, "offline"),                         # no credentials: offline, no probe
    ("auto", {}, True, lambda: True, "online"),
    ("auto", {}, True, lambda: False, "offline"),                   # credentials but no network
    ("online", {"WANDB_MODE": "disabled"}, True, _never, "disabled"),  # the environment wins
    ("online", {"WANDB_MODE": "dryrun"}, True, _never, "offline"),
    ("auto", {"WANDB_DISABLED": "true"}, True, _never, "disabled"),
    ("offline", {}, True, _never, "offline"),
    ("disabled", {}, True, _never, "disabled"),
])
def test_resolve_wandb_mode(requested, env, creds, probe, expected):
    assert dsetup.resolve_wandb_mode(requested, env, credentials=creds, probe=probe) == expected


def test_online_without_credentials_goes_offline_with_warning():
    with pytest.warns(UserWarning, match="no credentials"):
        assert dsetup.resolve_wandb_mode("online", {}, credentials=False, probe=_never) == "offline"


def test_bad_modes_are_named():
    with pytest.raises(ValueError, match="'sometimes'"):
        dsetup.resolve_wandb_mode("sometimes", {}, credentials=False, probe=_never)
    with pytest.raises(ValueError, match="WANDB_MODE='fast'"):
        dsetup.resolve_wandb_mode("auto", {"WANDB_MODE": "fast"}, credentials=False, probe=_never)


def test_credentials_from_env_or_netrc(tmp_path):
    assert dsetup.has_wandb_credentials({"WANDB_API_KEY": "x"})
    rc = tmp_path / "netrc"
    rc.write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    assert dsetup.has_wandb_credentials({}, str(rc))
    assert not dsetup.has_wandb_credentials({"WANDB_BASE_URL": "https://wandb.example.org"}, str(rc))
    assert not dsetup.has_wandb_credentials({}, str(tmp_path / "missing"))


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """No credentials, and any socket connect fails the test."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setattr(socket, "create_connection", _never)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))


def test_disabled_gives_csv_with_run_metadata(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    logger = dsetup.vda_logger(project="p", name="r", save_dir=str(tmp_path))
    assert isinstance(logger, CSVLogger)
    meta = logger.experiment.hparams["vda_meta"]
    assert set(meta) == {"git_commit", "packages", "host"} and "torch" in meta["packages"]


def test_auto_without_credentials_is_offline_wandb(no_network, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    logger = dsetup.vda_logger(project="p", tags=["a", "b"], group="g")
    assert isinstance(logger, dsetup.ResilientWandbLogger)
    assert logger._wandb_init["mode"] == "offline" and logger._wandb_init["tags"] == ["a", "b"]
    assert logger._wandb_init["group"] == "g" and "git_commit" in logger._wandb_init["config"]["vda_meta"]


def test_failed_online_init_falls_back_offline(monkeypatch):
    import wandb

    modes = []

    def fake_init(**kwargs):
        modes.append(kwargs["mode"])
        if kwargs["mode"] == "online":
            raise wandb.errors.CommError("unreachable")
        return "run"

    monkeypatch.setattr(wandb, "init", fake_init)
    logger = dsetup.ResilientWandbLogger(project="p", mode="online")
    with pytest.warns(UserWarning, match="continuing offline"):
        assert logger.experiment == "run"
    assert modes == ["online", "offline"]


def _chunk(kind, payload):
    return struct.pack("<IHB", 0, len(payload), kind) + payload


def test_record_log_reader_joins_chunks_across_blocks():
    head = b":W&B\xe1\xbe\x00"
    first = _chunk(1, b"a" * 10)
    # fill block 0 so that a FIRST chunk ends it, MIDDLE/LAST continue in the next blocks
    room = BLOCK - len(head) - len(first) - 7
    split = _chunk(2, b"b" * room)
    rest = _chunk(3, b"c" * (BLOCK - 7)) + _chunk(4, b"d" * 5)
    tail = b"\x00" * 3  # a block tail too short for a header is padding
    blob = head + first + split + rest + _chunk(1, b"e" * (BLOCK - 7 - 5 - 7 - 3)) + tail + _chunk(1, b"f")
    payloads = list(iter_payloads(blob))
    assert payloads[0] == b"a" * 10
    assert payloads[1] == b"b" * room + b"c" * (BLOCK - 7) + b"d" * 5
    assert payloads[-1] == b"f" and len(payloads) == 4


def test_record_log_reader_names_bad_files():
    with pytest.raises(ValueError, match="x.wandb: not a wandb run log"):
        list(iter_payloads(b"PK\x03\x04....", "x.wandb"))
