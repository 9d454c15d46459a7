"""The rough edges a new user hit, one test each: --compare rows, --input-size, what a bad checkpoint file is,
Ctrl-C in eval / shard / export, `vda bench data --shards` on short clips."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch

from vda_lightning import CheckpointError, load_model, save_model
from vda_lightning.cli import main
from vda_lightning.models import build_video_model

INTERRUPTED = "interrupted (Ctrl-C); unfinished outputs were removed"


def run_main(capsys, *argv) -> tuple[int, str, list[str]]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, [line for line in out.err.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------- eval --compare

def _results(path: Path, label: str | None, delta1: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"depth": {"kitti": {"abs_relative_difference": 0.1, "rmse_linear": 1.0, "delta1_acc": delta1,
                               "per_scene": [], "missing_predictions": {}}}}
    if label is not None:
        doc["meta"] = {"label": label}
    path.write_text(json.dumps(doc))
    return path


def test_compare_rows_come_from_the_stored_labels(tmp_path, capsys):
    a = _results(tmp_path / "a" / "r.json", "vits-ema", 0.9)
    b = _results(tmp_path / "b" / "r.json", "vits-raw", 0.8)  # both files are named r.json
    code, out, err = run_main(capsys, "eval", "--compare", a, b)
    rows = [line for line in out.splitlines() if line.startswith("| vits")]
    assert code == 0 and not err and len(rows) == 2
    assert rows[0].startswith("| vits-ema |") and "0.900" in rows[0] and rows[1].startswith("| vits-raw |")
    code, out, _ = run_main(capsys, "eval", "--compare", a, b, "--labels", "EMA,raw")
    assert code == 0 and "| EMA |" in out and "| raw |" in out
    old_a, old_b = _results(tmp_path / "x" / "r.json", None, 0.7), _results(tmp_path / "y" / "r.json", None, 0.6)
    code, out, _ = run_main(capsys, "eval", "--compare", old_a, old_b)  # no stored label: folder/stem
    assert code == 0 and "| x/r |" in out and "| y/r |" in out


def test_compare_refuses_two_rows_of_one_name(tmp_path, capsys):
    a = _results(tmp_path / "a" / "r.json", "same", 0.9)
    b = _results(tmp_path / "b" / "r.json", "same", 0.8)
    code, out, err = run_main(capsys, "eval", "--compare", a, b)
    assert code == 2 and out == "" and len(err) == 1
    assert str(b) in err[0] and str(a) in err[0] and "'same'" in err[0] and "--labels" in err[0]
    code, _, err = run_main(capsys, "eval", "--compare", a, b, "--labels", "one")
    assert code == 2 and err == ["vda eval: error: --labels names 1 rows for 2 results files"]
    code, _, err = run_main(capsys, "eval", "--compare", a, b, "--labels", "x,x")
    assert code == 2 and "'x'" in err[0]


# --------------------------------------------------------------------------------------------- --input-size

@pytest.mark.parametrize("argv", [["infer", "clip.mp4", "--checkpoint", "c.pth"], ["bench", "infer"],
                                  ["eval", "--benchmark", "kitti", "--benchmark-root", ".", "--predictions", "."]])
def test_input_size_must_be_a_multiple_of_14(capsys, argv):
    code, _, err = run_main(capsys, *argv, "--input-size", "100")
    assert code == 2
    assert err[-1].endswith("argument --input-size: 100 is not a multiple of 14 (the ViT patch size); use 98 or 112")
    code, _, err = run_main(capsys, *argv, "--input-size", "10")
    assert code == 2 and err[-1].endswith("use 14")


# -------------------------------------------------------------------------------------- bad checkpoint files

def _safetensors_bytes(tmp_path) -> bytes:
    from safetensors.torch import save_file

    save_file({"pretrained.cls_token": torch.zeros(1, 1, 8)}, str(tmp_path / "s.safetensors"))
    return (tmp_path / "s.safetensors").read_bytes()


def _damaged_header(data: bytes) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    return data[:8] + b"{" + b"#" * (n - 1) + data[8 + n:]


def _zip_bytes(tmp_path) -> bytes:
    torch.save({"pretrained.cls_token": torch.zeros(1, 1, 8)}, tmp_path / "z.pth")
    return (tmp_path / "z.pth").read_bytes()


CASES = {
    "config.json": (lambda t: json.dumps({"encoder": "vits", "metric": False}).encode(),
                    "not a checkpoint but a model config (JSON)"),
    "results.pth": (lambda t: b'{"depth": {}, "meta": {}}', "not a checkpoint but a JSON file (keys: depth, meta)"),
    "notes.pth": (lambda t: b"trained for 3 epochs\n", "not a checkpoint but a text file (first line: 'trained for"),
    "lfs.pth": (lambda t: b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
                "not a checkpoint but a Git LFS pointer (run `git lfs pull`"),
    "page.pth": (lambda t: b"<!DOCTYPE html>\n<html><body>Sign in</body></html>", "not a checkpoint but an HTML page"),
    "cut.pth": (lambda t: _zip_bytes(t)[:300], "damaged checkpoint: a truncated or damaged zip archive"),
    "cut.safetensors": (lambda t: _safetensors_bytes(t)[:-8], "damaged checkpoint: a truncated safetensors file"),
    "header.safetensors": (lambda t: _damaged_header(_safetensors_bytes(t)),
                           "damaged checkpoint: a safetensors file whose header is damaged"),
    "empty.pth": (lambda t: b"", "not a checkpoint but an empty file (0 bytes)"),
    "noise.bin": (lambda t: bytes(range(7, 200)), "not a checkpoint but data of no format that holds weights"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_checkpoint_errors_say_what_the_file_is(tmp_path, capsys, name):
    make, says = CASES[name]
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert str(err.value).startswith(f"{path}: ") and says in str(err.value)
    code, _, lines = run_main(capsys, "export", path, "--output", tmp_path / "out.safetensors")
    assert code == 2 and len(lines) == 1 and says in lines[0]


def test_checkpoints_are_read_by_content_not_by_name(tmp_path):
    model = build_video_model("vitt").eval()
    st = save_model(model, tmp_path / "m.safetensors")
    renamed = tmp_path / "m.pth"  # a safetensors file under a .pth name still loads
    renamed.write_bytes(st.read_bytes())
    assert load_model(renamed).config.encoder == "vitt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="holds 1 tensors, none of a \\(Video\\) Depth Anything model"):
        load_model(tmp_path / "resnet.pth")


# ------------------------------------------------------------------------------------------------- Ctrl-C

def test_ctrl_c_in_shard_leaves_no_shard(tmp_path, capsys, monkeypatch):
    from vda_lightning.data import shards

    real, calls = shards.ShardWriter.write, {"n": 0}

    def write(self, rec):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, rec)

    monkeypatch.setattr(shards.ShardWriter, "write", write)
    out = tmp_path / "shards"
    code, _, err = run_main(capsys, "shard", "synthetic", "--out", out, "--train-clips", 3, "--val-clips", 1,
                            "--clip-len", 2, "--height", 28, "--width", 28)
    assert code == 130 and err[-1] == f"vda shard: {INTERRUPTED}"
    left = list(out.iterdir()) if out.exists() else []
    assert not [p for p in left if p.name.startswith(".")]  # no temporary
    assert all(shards.shard_is_complete(str(p)) for p in left if p.suffix == ".tar")  # no partial shard
    assert not any(p.name.startswith("train") for p in left)  # the interrupted one is not there


def test_ctrl_c_in_export_leaves_no_file(tmp_path, capsys, monkeypatch):
    import safetensors.torch

    ckpt = save_model(build_video_model("vitt").eval(), tmp_path / "m.safetensors")

    def save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half of it")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_main(capsys, "export", ckpt, "--output", out / "exported.safetensors")
    assert code == 130 and err == [f"vda export: {INTERRUPTED}"]
    assert list(out.iterdir()) == []


def test_ctrl_c_in_eval_writes_no_results(golden_dir, tmp_path, capsys, monkeypatch):
    from vda_lightning.evaluation import runner

    calls = {"n": 0}
    real = runner.evaluate_depth

    def evaluate_depth(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the first benchmark is scored, the second is interrupted
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(runner, "evaluate_depth", evaluate_depth)
    mini = golden_dir / "mini_benchmark"
    out = tmp_path / "eval"
    out.mkdir()
    code, _, err = run_main(capsys, "eval", "--predictions", mini / "predictions", "--benchmark-root",
                            mini / "benchmark", "--benchmark", "kitti,bonn", "--output", out / "r.json",
                            "--no-progress")
    assert code == 130 and err[-1] == f"vda eval: {INTERRUPTED}"
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------------- bench data on short clips

def test_bench_data_on_short_clips_is_one_line_or_works(tmp_path, capsys):
    out = tmp_path / "shards"
    assert run_main(capsys, "shard", "synthetic", "--out", out, "--train-clips", 2, "--val-clips", 1,
                    "--clip-len", 4, "--height", 28, "--width", 28)[0] == 0
    code, _, err = run_main(capsys, "bench", "data", "--shards", out / "train-*.tar", "--crop", 28,
                            "--json", tmp_path / "b.json")
    assert code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("vda bench data: error: ") and "2 too_short" in err[-1] and "--frames" in err[-1]
    assert not (tmp_path / "b.json").exists()
    code, out_text, _ = run_main(capsys, "bench", "data", "--shards", out / "train-*.tar", "--crop", 28,
                                 "--frames", 4, "--json", tmp_path / "b.json")
    assert code == 0 and json.loads((tmp_path / "b.json").read_text())["per_worker"][0]["clips"] == 2
    assert os.path.getsize(tmp_path / "b.json") > 0 and "clips/s" in out_text
