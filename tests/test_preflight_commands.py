"""Checks before weight for every command that takes files (issue 28, item 1): `vda export`, `eval`, `pseudolabel`,
`shard`, `fit` and `validate` refuse a missing input, a file that holds no weights and a recipe that cannot be read
in one line naming the file, with exit status 2, before torch is imported (`vda infer`: test_infer_preflight.py)."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# One process runs every case through `vda`'s dispatcher; after each it says whether torch has been imported yet.
PROBE = """
import contextlib, io, json, sys
from vda_lightning.cli import main
report = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    report.append([code, err.getvalue().splitlines(), "torch" in sys.modules])
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("preflight")
    (tmp / "x.pth").write_text("hello\n")  # a text file named like weights
    header = json.dumps({"__metadata__": {"metric": "false"}}).encode()  # safetensors recording a relative model
    (tmp / "relative.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (tmp / "bench" / "kitti").mkdir(parents=True)
    (tmp / "bench" / "kitti" / "kitti_video.json").write_text("{}")
    (tmp / "preds").mkdir()
    (tmp / "shard.tar").write_bytes(b"")
    (tmp / "broken.yaml").write_text("trainer: [\n")
    (tmp / "init_text.yaml").write_text(f"model:\n  init_checkpoint: {tmp / 'x.pth'}\n")
    return {p.name: p for p in tmp.iterdir()} | {"missing": tmp / "missing", "tmp": tmp}


def _cases(f: dict[str, Path]) -> list[tuple[list[str], Path]]:
    """(argv, the file its one error line must name)."""
    bench = ["--benchmark", "kitti", "--benchmark-root", f["bench"]]
    pl = ["--output", f["tmp"] / "pl"]
    return [
        (["export", f["missing"] / "model.pth"], f["missing"] / "model.pth"),
        (["export", f["x.pth"], "--format", "onnx"], f["x.pth"]),
        (["eval", *bench, "--predictions", f["missing"]], f["missing"]),
        (["eval", *bench, "--checkpoint", f["x.pth"]], f["x.pth"]),
        (["eval", *bench, "--checkpoint", f["relative.safetensors"], "--metric"], f["relative.safetensors"]),
        (["eval", "--benchmark", "bonn", "--benchmark-root", f["bench"], "--predictions", f["preds"]],
         f["bench"] / "bonn" / "bonn_video.json"),
        (["pseudolabel", f["missing"] / "a.tar", *pl, "--teacher-checkpoint", "dav2-large"], f["missing"] / "a.tar"),
        (["pseudolabel", f["shard.tar"], *pl, "--teacher-checkpoint", f["x.pth"]], f["x.pth"]),
        (["shard", "inspect", f["missing"] / "b.tar"], f["missing"] / "b.tar"),
        (["shard", "hypersim", f["missing"], "--out", f["tmp"] / "s"], f["missing"]),  # before its camera notice
        (["fit", "--config", f["missing"] / "r.yaml"], f["missing"] / "r.yaml"),
        (["fit", "--config", f["broken.yaml"]], f["broken.yaml"]),
        (["fit", "--config", f["init_text.yaml"]], f["x.pth"]),
        (["validate", "--config", f["init_text.yaml"], "--model.init_checkpoint", "vda-small", "--ckpt_path",
          f["missing"] / "last.ckpt"], f["missing"] / "last.ckpt"),
    ]


def test_every_command_refuses_bad_files_in_one_line_before_torch(files):
    cases = _cases(files)
    argvs = [[str(a) for a in argv] for argv, _ in cases]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs)], capture_output=True, text=True,
                          cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=60)
    for (argv, named), (code, lines, torch) in zip(cases, json.loads(proc.stdout)):
        prog = f"vda {argv[0]}"
        assert code == 2 and len(lines) == 1, (argv, lines)
        assert lines[0].startswith(f"{prog}: error: ") and str(named) in lines[0], (argv, lines)
        assert not torch, f"{argv}: torch was imported before the refusal"


def test_a_real_process_refuses_without_importing_torch(files):
    """One command as a user runs it (`python -m vda_lightning`): status 2, one line, no torch in its import log."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "vda_lightning", "export", str(files["x.pth"])],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and lines == [f"vda export: error: {files['x.pth']}: not a checkpoint but a text "
                                              "file (first line: 'hello')"]
    assert not any(line.split("|")[-1].strip().split(".")[0] == "torch" for line in proc.stderr.splitlines())


def test_the_vda_fit_script_checks_before_lightning(files):
    """`vda-fit` (pyproject's script) runs the dispatcher's checks too: one line saying `vda-fit`, no torch."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vda-fit"] == "vda_lightning.cli:fit_alias"
    probe = ("import sys; from vda_lightning.cli import fit_alias; sys.argv = ['vda-fit', '--config', sys.argv[1]]; "
             "code = fit_alias(); print(code, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe, str(files["broken.yaml"])], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    lines = proc.stderr.splitlines()
    assert proc.stdout.split() == ["2", "False"], proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("vda-fit: error: ") and str(files["broken.yaml"]) in lines[0]


def test_hub_names_pass_through_to_the_loader():
    from vda_lightning.checkpoints import CheckpointError
    from vda_lightning.cli.preflight import checked_weights

    assert checked_weights("vda-small") is None and checked_weights("hf://depth-anything/Some-Repo@v1") is None
    with pytest.raises(CheckpointError, match="not a Hugging Face repository name"):
        checked_weights("hf://bad..name")


def test_vda_eval_keeps_a_hub_name_whole():
    """`vda eval --checkpoint hf://ORG/REPO/FILE` reaches the loader as typed (parsed as a Path it lost a slash)."""
    from vda_lightning.evaluation.cli import build_parser

    name = "hf://depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth"
    args = build_parser().parse_args(["--benchmark", "kitti", "--benchmark-root", "root", "--checkpoint", name])
    assert args.checkpoint == name
