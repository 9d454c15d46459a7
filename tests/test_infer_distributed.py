"""vda infer past one process (issue 29): the pure plan (shares, records, manifest, totals, the launcher's ranks),
the input list read through trust/, and two CPU processes under torchrun on four short clips and a long one:
SIGKILL of a rank mid-run, then a re-run that redoes only what was not complete and ends with files identical,
bit for bit, to one process's; the merged manifest lists each input once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vda_lightning.inference.distributed import (
    balanced_shares,
    job_totals,
    merge_manifest,
    record_matches,
    totals_line,
)
from vda_lightning.io import launch_rank_world
from vda_lightning.trust import ReadError, parse_path_list

CLIPS = {"a": 3, "b": 4, "c": 2, "d": 5, "long": 290}  # frames; "long" is thirteen 32-frame windows (~1.5 s on
# one thread): its rank is frozen part-way through it (SIGSTOP) while the other completes short ones, then killed
SHORT = sum(n for name, n in CLIPS.items() if name != "long")


def test_shares_balance_frames_not_files_and_cover_each_input_once():
    weights = [3, 4, 2, 5, 70]
    assert balanced_shares(weights, 2) == [[4], [0, 1, 2, 3]]  # the long video alone; the four short ones together
    assert balanced_shares(weights, 1) == [[0, 1, 2, 3, 4]]
    assert balanced_shares([1, 1, 1, 1], 3) == [[0, 3], [1], [2]]  # ties: input order, lowest rank first
    assert balanced_shares([], 4) == [[], [], [], []]
    many = [(i * 37) % 11 for i in range(50)]
    shares = balanced_shares(many, 4)
    assert sorted(i for s in shares for i in s) == list(range(50))
    loads = [sum(max(many[i], 1) for i in s) for s in shares]
    assert max(loads) - min(loads) <= max(many)  # longest-first: no rank more than one input behind another
    with pytest.raises(ValueError):
        balanced_shares([1], 0)


def test_launcher_environments_give_rank_world_and_local_rank():
    assert launch_rank_world({}) == (0, 1, 0)
    assert launch_rank_world({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == (3, 8, 1)
    srun = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_LOCALID": "1", "SLURM_NTASKS": "2"}
    assert launch_rank_world(srun) == (1, 2, 1)
    assert launch_rank_world({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}) == (0, 1, 0)  # the batch shell: one process
    array = {**srun, "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert launch_rank_world(array) == (1, 2, 1)  # an array shares inputs only when vda submit says so
    assert launch_rank_world({**array, "VDA_SHARD_OVER_ARRAY": "1"}) == (3, 6, 1)  # task 1 of 3, rank 1 of 2
    with pytest.raises(ValueError):
        launch_rank_world({"RANK": "2", "WORLD_SIZE": "2"})


def test_records_manifest_and_totals(tmp_path):
    expected = {"input": "a", "name": "a", "fingerprint": {"files": 1, "bytes": 3, "mtime_ns": 5},
                "checkpoint_sha256": "c" * 64, "settings_sha256": "s" * 64}
    (tmp_path / "a_depths.npz").write_bytes(b"x")
    record = {**expected, "outputs": ["a_depths.npz"], "frames": 3}
    assert record_matches(record, expected, tmp_path)
    assert not record_matches(None, expected, tmp_path)
    assert not record_matches({**record, "settings_sha256": "t" * 64}, expected, tmp_path)  # other settings: redo
    assert not record_matches({**record, "outputs": ["gone.npz"]}, expected, tmp_path)  # an output deleted: redo
    entry = lambda i, status="complete": {"index": i, "status": status, "frames": 2, "reused": i == 0}
    reports = [{"rank": 0, "world": 2, "entries": [entry(1)], "frames_computed": 2, "seconds": 1.0},
               {"rank": 1, "world": 2, "entries": [entry(0), entry(2, "failed")], "frames_computed": 4, "seconds": 2.0}]
    manifest = merge_manifest(reports, {"command": "vda infer"}, 3)
    assert [e["index"] for e in manifest["inputs"]] == [0, 1, 2] and manifest["world_size"] == 2
    assert manifest["totals"] == {"inputs": 3, "complete": 2, "failed": 1, "reused": 1, "frames": 6,
                                  "frames_computed": 6, "frames_per_second": 4.0}
    with pytest.raises(ValueError, match="missing \\[2\\], twice \\[1\\]"):
        merge_manifest([{**reports[0], "entries": [entry(0), entry(1), entry(1)]}], {}, 3)
    t = job_totals([{"frames_done": 30, "inputs_done": 1, "frames_computed": 20, "seconds": 2.0},
                    {"frames_done": 10, "inputs_done": 2, "frames_computed": 10, "seconds": 1.0}], 100, 5)
    assert t["frames_per_second"] == 20.0 and t["eta_seconds"] == 3.0
    assert totals_line(t, 2) == "job: 3/5 inputs, 40/100 frames, 20.00 frames/s over 2/2 ranks, ETA 0:03"


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20),
                min_size=1, max_size=8),
       st.sampled_from(["\n", "\r\n"]))
def test_path_lists_round_trip_and_refuse_control_characters(names, newline):
    names = [n.strip(" \t") for n in names]
    kept = [n for n in names if n and not n.startswith("#")]
    raw = ("# inputs\n\n" + newline.join(names) + newline).encode()
    if not kept:
        with pytest.raises(ReadError, match="lists no paths"):
            parse_path_list(raw, "list.txt")
        return
    assert parse_path_list(raw, "list.txt") == kept
    with pytest.raises(ReadError, match="line 3: the path holds a control character"):
        parse_path_list(b"a\nb\nc\x1bd\n", "list.txt")
    with pytest.raises(ReadError, match="not UTF-8"):
        parse_path_list(b"a\n\xff\n", "list.txt")


def _write_clips(root: Path) -> list[Path]:
    import cv2

    rng = np.random.default_rng(0)
    paths = []
    for name, frames in CLIPS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(frames):
            cv2.imwrite(str(folder / f"{i:04d}.png"), rng.integers(0, 255, (28, 42, 3), dtype=np.uint8))
        paths.append(folder)
    return paths


def _outputs(out: Path) -> dict[str, bytes]:
    """The files under final names (hidden ones, i.e. staging, spools and the job folder, left out)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)}


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of torchrun's worker with RANK=rank (from /proc), or None while it has not started."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


@pytest.fixture(scope="module")
def clip_job(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_job")
    inputs = _write_clips(root / "clips")
    listing = root / "inputs.txt"
    listing.write_text("# five clips\n" + "\n".join(str(p) for p in inputs) + "\n")
    args = ["--checkpoint", str(tiny_checkpoint), "--input-size", "28", "--device", "cpu", "--save", "npz,png16",
            "--no-progress"]
    return {"root": root, "inputs": inputs, "listing": listing, "args": args}


def test_two_processes_killed_and_rerun_match_one_process_bit_for_bit(clip_job, capsys):
    import torch

    from vda_lightning.inference.cli import main

    root, args = clip_job["root"], clip_job["args"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker (OMP_NUM_THREADS=1): CPU kernels split work by thread count
    try:
        assert main([*map(str, clip_job["inputs"]), *args, "--output-dir", str(root / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    reference = _outputs(root / "one")
    assert len(reference) == 5 + sum(CLIPS.values()) + 5  # npz + pngs + depth_scale.json of each clip

    out = root / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "vda_lightning",
           "infer", "--inputs", str(clip_job["listing"]), *args, "--output-dir", str(out)]
    env = {**os.environ, "VDA_PROGRESS_SECONDS": "0.5"}
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    spool, done = out / ".long.depths.f32.partial", out / ".vda-job" / "done"
    deadline = time.monotonic() + 240
    # the state to kill in (states polled, not times): rank 0 part-way through the long clip, frozen there with
    # SIGSTOP as soon as its spool holds a map (so how far the ranks' start-ups are apart does not matter), and
    # rank 1 with a short clip complete
    rank0 = None
    while rank0 is None:
        pid = _rank_pid(launcher, 0)
        if pid is not None and spool.exists() and spool.stat().st_size > 0:
            os.kill(pid, signal.SIGSTOP)
            rank0 = pid
        assert launcher.poll() is None, launcher.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "rank 0 spooled no map within 240 s"
        time.sleep(0.01)
    while not (done.exists() and any(done.iterdir())):
        assert launcher.poll() is None, launcher.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "rank 1 completed no input within 240 s"
        time.sleep(0.02)
    spooled = spool.stat().st_size
    assert 0 < spooled < CLIPS["long"] * 28 * 42 * 4, "rank 0 was not stopped part-way through the long clip"
    os.kill(rank0, signal.SIGKILL)
    log = launcher.communicate(timeout=120)[0]
    assert launcher.returncode != 0, log[-2000:]
    complete = sorted(p.stem for p in done.iterdir())
    assert "long" not in complete and complete, complete
    visible = _outputs(out)
    assert all(reference[k] == v for k, v in visible.items()), "a file under a final name is partial"
    assert not any(k.startswith("long") for k in visible)  # nothing of the killed input under a final name
    stamps = {k: os.stat(out / k).st_mtime_ns for k in visible}

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _outputs(out) == reference  # the union of both ranks' outputs is the one-process run, bit for bit
    assert all(os.stat(out / k).st_mtime_ns == stamps[k] for k in stamps)  # what was complete was not redone
    assert not [p for p in out.rglob(".*") if ".vda-job" not in p.parts]  # no staging, no spool left
    manifest = json.loads((out / ".vda-job" / "manifest.json").read_text())
    assert [e["input"] for e in manifest["inputs"]] == [str(p) for p in clip_job["inputs"]]  # each input once
    assert {e["name"] for e in manifest["inputs"] if e["reused"]} == set(complete)
    assert manifest["totals"]["complete"] == 5 and manifest["world_size"] == 2
    total, long = sum(CLIPS.values()), CLIPS["long"]
    assert f"rank 0/2: 1 of 5 inputs, {long} of {total} frames: long" in rerun.stderr  # each rank names its share
    assert f"rank 1/2: 4 of 5 inputs, {SHORT} of {total} frames: a, b, c, d" in rerun.stderr
    assert f"job: 5/5 inputs, {total}/{total} frames" in rerun.stderr  # rank 0's totals over both ranks
    print(f"SIGKILL of rank 0 with {spooled // (28 * 42 * 4)} of {long} frames of 'long' spooled, "
          f"{complete} complete; the re-run reused those (mtimes unchanged), computed the rest; "
          f"{len(reference)} files bit-identical to one process; totals {manifest['totals']}")


def test_devices_start_torchrun_outside_a_launcher_and_are_checked_inside_one(monkeypatch, capsys, tmp_path):
    from vda_lightning.inference import cli

    clip = _write_clips(tmp_path)[0]  # a real input: nothing refuses it before the launch
    started = []
    monkeypatch.setattr("subprocess.call", lambda cmd: started.append(cmd) or 0)
    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main([str(clip), "--devices", "2", "--checkpoint", "x.pth"]) == 0
    assert started == [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                        "vda_lightning", "infer", str(clip), "--devices", "2", "--checkpoint", "x.pth"]]
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(clip), "--devices", "4", "--checkpoint", "x.pth"])
    assert exit_.value.code == 2 and "ask for 4 processes; the launcher started 2" in capsys.readouterr().err
