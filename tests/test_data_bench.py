"""`vda-bench data` (run_data_bench) prints figures and writes them as JSON."""
from __future__ import annotations

import json

import pytest

from vda_lightning.bench.data import run_data_bench


def test_data_bench_writes_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert run_data_bench(["--clips", "2", "--frames", "3", "--size", "56", "--crop", "28", "--frame-format", "png",
                           "--augment-on", "cpu,device", "--device", "cpu", "--work-dir", str(tmp_path),
                           "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    cpu, device = doc["per_worker"]
    for r in (cpu, device):
        assert r["name"] == "png+png16" and r["clips"] == 2 and r["clip_len"] == 3 and r["skipped"] == 0
        assert r["clips_per_s"] > 0 and r["MB_per_s"] > 0 and r["frames_per_s"] == pytest.approx(r["clips_per_s"] * 3)
    assert (cpu["augment_on"], device["augment_on"]) == ("cpu", "device") and "device_clips_per_s" not in cpu
    assert device["device"] == "cpu" and device["device_clips_per_s"] > 0
    printed = capsys.readouterr().out
    assert "augment on cpu" in printed and "augmentation on cpu:" in printed
