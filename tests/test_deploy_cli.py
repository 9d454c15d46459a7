"""`vda export --format onnx|tensorrt` and `vda infer --backend onnxruntime` end to end: the golden long video gives
the same files and numbers as the PyTorch backend; one-line errors; the docs' plain-onnxruntime example runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vda_lightning import save_model
from vda_lightning.deploy.commands import EXPORTERS
from vda_lightning.deploy.onnx_export import EXPORTERS as EXPORT_CHOICES
from vda_lightning.export import main as export_main
from vda_lightning.inference import StreamingRunner
from vda_lightning.inference.cli import main as infer_main
from vda_lightning.inference.preprocess import Preprocessor
from vda_lightning.models import build_image_model

ROOT = Path(__file__).resolve().parents[1]


def one_error(err: str, prog: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, err
    return errors[0]


def write_pngs(folder: Path, frames) -> Path:
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f[..., ::-1])
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def long_pngs(golden_dir, tmp_path_factory):
    case = np.load(golden_dir / "long_video_case.npz")
    return write_pngs(tmp_path_factory.mktemp("long") / "frames", case["frames"]), case


def test_exporter_choices_agree():
    assert EXPORTERS == EXPORT_CHOICES


def test_onnxruntime_backend_writes_what_pytorch_writes(golden_dir, golden_onnx_dir, long_pngs, tmp_path, capsys):
    folder, case = long_pngs
    common = [str(folder), "--input-size", "70", "--save", "npz,png16,vis"]
    ckpt = str(golden_dir / "vda_vits_random.safetensors")
    assert infer_main([*common, "--checkpoint", ckpt, "--precision", "fp32", "--output-dir", str(tmp_path / "pt")]) == 0
    assert infer_main([*common, "--backend", "onnxruntime", "--onnx", str(golden_onnx_dir), "--checkpoint", ckpt,
                       "--output-dir", str(tmp_path / "ort")]) == 0
    assert "error" not in capsys.readouterr().err
    assert listing(tmp_path / "ort") == listing(tmp_path / "pt") != []
    ort = np.load(tmp_path / "ort" / "frames_depths.npz")["depths"]
    pt = np.load(tmp_path / "pt" / "frames_depths.npz")["depths"]
    ref = case["depths"]
    assert ort.shape == ref.shape == (70, 90, 160) and ort.dtype == np.float32
    assert np.abs(ort - ref).max() <= 1e-4 * np.abs(ref).max()  # the published long-video inference
    assert np.abs(ort - pt).max() <= 1e-4 * np.abs(pt).max()
    scale = json.loads((tmp_path / "ort" / "frames_png16" / "depth_scale.json").read_text())
    png = cv2.imread(str(tmp_path / "ort" / "frames_png16" / "000033.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(png / scale["scale"] - ort[33]).max() <= 0.5 / scale["scale"] + 1e-7


def test_onnxruntime_streaming_mode_through_the_cli(golden_video_model, golden_onnx_dir, long_pngs, tmp_path):
    folder, case = long_pngs
    assert infer_main([str(folder), "--backend", "onnxruntime", "--onnx", str(golden_onnx_dir), "--mode", "streaming",
                       "--input-size", "70", "--max-len", "12", "--output-dir", str(tmp_path)]) == 0
    out = np.load(tmp_path / "frames_depths.npz")["depths"]
    ref = np.stack(list(StreamingRunner(golden_video_model, 70).run(iter(case["frames"][:12]))))
    assert out.shape == ref.shape == (12, 90, 160)
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


def test_onnxruntime_backend_errors_are_one_line(golden_onnx_dir, long_pngs, tmp_path, capsys, monkeypatch):
    folder, _ = long_pngs
    base = [str(folder), "--backend", "onnxruntime", "--output-dir", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        infer_main(base)
    assert e.value.code == 2 and "--backend onnxruntime needs --onnx DIR" in capsys.readouterr().err
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # pytorch without --checkpoint: vda-small (docs/models.md),
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # here offline and not cached: one line naming what to fetch
    assert infer_main([str(folder), "--output-dir", str(tmp_path / "o")]) == 2
    assert "depth-anything/Video-Depth-Anything-Small" in one_error(capsys.readouterr().err, "vda-infer")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    cases = [
        ([*base, "--onnx", str(tmp_path / "nowhere")], "nowhere: no such folder of exported ONNX files"),
        ([*base, "--onnx", str(golden_onnx_dir), "--precision", "fp16"],
         "holds an fp32 export; --precision fp16 needs an export in that precision"),
        ([*base, "--onnx", str(golden_onnx_dir), "--encoder", "vitl"], "holds a vits export, not --encoder vitl"),
    ]
    other = save_model(build_image_model("vitt"), tmp_path / "other.safetensors")
    cases.append(([*base, "--onnx", str(golden_onnx_dir), "--checkpoint", str(other)],
                  f"vda_vits_random.safetensors, not from --checkpoint {other}"))
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "encoder.onnx").symlink_to(golden_onnx_dir / "encoder.onnx")
    (partial / "head.onnx").symlink_to(golden_onnx_dir / "head.onnx")
    (partial / "head.onnx.json").symlink_to(golden_onnx_dir / "head.onnx.json")
    cases.append(([*base, "--onnx", str(partial)], "encoder.onnx: its sidecar encoder.onnx.json is missing"))
    for argv, message in cases:
        assert infer_main(argv) == 2
        line = one_error(capsys.readouterr().err, "vda-infer")
        assert message in line, line
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_export_refuses_what_is_not_a_video_model(tmp_path, capsys):
    image = save_model(build_image_model("vitt"), tmp_path / "dav2.safetensors")
    assert export_main([str(image), "--format", "onnx", "--output", str(tmp_path / "x" / "model.onnx")]) == 2
    line = one_error(capsys.readouterr().err, "vda-export")
    assert str(image) in line and "Depth Anything V2 image checkpoint" in line
    notes = tmp_path / "notes.safetensors"
    notes.write_text("not a checkpoint")
    assert export_main([str(notes), "--format", "onnx"]) == 2
    assert "not a checkpoint but a text file" in one_error(capsys.readouterr().err, "vda-export")
    assert not (tmp_path / "x").exists()


def test_tensorrt_without_tensorrt_or_cuda_is_one_line(golden_dir, tmp_path, capsys):
    ckpt = golden_dir / "vda_vits_random.safetensors"
    assert export_main([str(ckpt), "--format", "tensorrt", "--output", str(tmp_path / "model.engine")]) == 2
    line = one_error(capsys.readouterr().err, "vda-export")
    assert line.startswith("vda-export: error: --format tensorrt needs tensorrt and a CUDA device: ")
    assert not list(tmp_path.iterdir())  # stopped before the ONNX export


def test_docs_plain_onnxruntime_example_runs(golden_video_model, golden_onnx_dir, long_pngs, tmp_path, monkeypatch):
    """The ten lines of docs/deploy.md, run as written (paths and the input size pointed at the golden export)."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## Plain onnxruntime", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    _, case = long_pngs
    frames = case["frames"][:6]
    np.save(tmp_path / "clip.npy", frames)
    (tmp_path / "export").symlink_to(golden_onnx_dir)
    monkeypatch.chdir(tmp_path)
    code = code.replace('contract["resize"]["input_size"]', "70")  # 518 in the sidecar; 70 keeps the test fast
    scope: dict = {}
    exec(compile(code, "docs/deploy.md", "exec"), scope)  # noqa: S102 - our own documentation
    depth = scope["depth"]
    x = Preprocessor(90, 160, input_size=70)(frames)
    with torch.no_grad():
        ref = golden_video_model(x[None])[0].numpy()
    assert depth.shape == ref.shape == (6, 70, 126)
    assert np.abs(depth - ref).max() <= 1e-3 * np.abs(ref).max()  # cv2 vs torch bicubic: ~1e-5 on the input


def test_bench_runs_both_backends_in_one_run(tmp_path):
    from vda_lightning.bench import main as bench_main

    out = tmp_path / "bench.json"
    assert bench_main(["infer", "--encoder", "vitt", "--input-size", "28", "--lengths", "30", "--height", "20",
                       "--width", "30", "--modes", "runner,streaming", "--backend", "pytorch,onnxruntime",
                       "--threads", "2", "--in-process", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["mode"], r["backend"]): r for r in report["results"]}
    assert set(rows) == {(m, b) for m in ("runner", "streaming") for b in ("pytorch", "onnxruntime")}
    for mode in ("runner", "streaming"):
        ort = rows[(mode, "onnxruntime")]
        assert ort["frames"] == 30 and ort["device"] == "onnxruntime:CPUExecutionProvider"
        assert ort["max_rel_diff_vs_pytorch"] <= 1e-4 and ort["speedup_vs_pytorch"] > 0
    assert rows[("runner", "onnxruntime")]["encoder_frame_passes"] == 30  # the same feature reuse
    assert report["onnx_export"]["files"] == ["encoder.onnx", "head.onnx", "streaming.onnx"]
    assert report["machine"]["onnxruntime"]
