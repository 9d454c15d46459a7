"""Processes and files a killed command leaves behind: vda-shard's workers die with their parent (SIGKILL or
SIGTERM, within 5 s), the next start of the same command removes the staging files of the killed run, and a disk
that fills up under two writers ends the run in one line naming the shard, with no staging file left."""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vda_lightning.io import AtomicWrite, remove_stale_temporaries

ROOT = Path(__file__).resolve().parents[1]


def _processes_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


@pytest.fixture(scope="module")
def big_folders(tmp_path_factory):
    """Six 24-frame sequences of 240x320 frames (copies of one PNG) with .npy depth: 18 shards, seconds of work."""
    root = tmp_path_factory.mktemp("folders")
    yy, xx = np.mgrid[0:240, 0:320]
    frame = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    src_png, src_npy = root / "frame.png", root / "depth.npy"
    cv2.imwrite(str(src_png), frame)
    np.save(src_npy, (1 + (xx + yy) / 100).astype(np.float32))
    for s in range(6):
        for sub in ("frames", "depth"):
            (root / f"seq{s}" / sub).mkdir(parents=True)
        for i in range(24):
            shutil.copyfile(src_png, root / f"seq{s}" / "frames" / f"{i:04d}.png")
            shutil.copyfile(src_npy, root / f"seq{s}" / "depth" / f"{i:04d}.npy")
    src_png.unlink()
    src_npy.unlink()
    return root


def _shard_cmd(root, out) -> list[str]:
    return [sys.executable, "-m", "vda_lightning", "shard", "folders", str(root), "--out", str(out), "--clip-len",
            "4", "--max-samples-per-shard", "2", "--workers", "2", "--no-progress"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_shard_workers_die_with_their_parent_and_a_rerun_cleans_up(big_folders, tmp_path, sig):
    out = tmp_path / "shards"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_shard_cmd(big_folders, out), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill once the workers are writing (a staging file exists)
            if out.is_dir() and any(p.name.endswith(".tmp") for p in out.iterdir()) and len(_children(proc.pid)) >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the workers never started writing")
        group = _processes_in_group(proc.pid)
        assert len(group) >= 3, group  # the command and its two workers share one process group
        proc.send_signal(sig)
        proc.wait(timeout=10)
        gone_by = time.monotonic() + 5.0
        while _processes_in_group(proc.pid) and time.monotonic() < gone_by:
            time.sleep(0.1)
        left = _processes_in_group(proc.pid)
        assert not left, f"processes of the killed run still alive after 5 s: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _processes_in_group(proc.pid):
            os.kill(pid, signal.SIGKILL)
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    complete = [p for p in out.glob("*.index.json")]
    assert len(complete) < 18, "the run finished before the signal: make the test data bigger"
    # The same command again: resumes, and removes what the killed run left.
    result = subprocess.run(_shard_cmd(big_folders, out), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], leftovers
    assert len(list(out.glob("*.tar"))) == 18 and len(list(out.glob("*.index.json"))) == 18


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {f".train-000001.tar.{dead.pid}-abc123.tmp": True,   # a killed writer's: removed
             ".train-000002.tar.k2j3h4.tmp": True,               # an older writer's (no pid): removed
             f".train-000003.tar.{os.getppid()}-x.tmp": False,   # a live process's: kept
             f".val-000001.tar.{dead.pid}-abc.tmp": False,        # another target: kept
             "train-000004.tar": False}                          # a finished file: kept
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".train-000005.tar.{dead.pid}-d.tmp").mkdir()  # a staging folder
    removed = {p.name for p in remove_stale_temporaries(tmp_path, "train-*")}
    assert removed == {n for n, gone in names.items() if gone} | {f".train-000005.tar.{dead.pid}-d.tmp"}
    assert all((tmp_path / n).exists() for n, gone in names.items() if not gone)
    with AtomicWrite(tmp_path / "train-000009.tar") as w:  # our own, while it is being written: kept
        assert str(os.getpid()) in w.tmp.name
        assert remove_stale_temporaries(tmp_path, "train-*") == []


@pytest.fixture
def full_disk(tmp_path):
    """(output folder, preexec_fn, what the error says) of a disk that fills up after a few shards: a 400 kB tmpfs
    (real ENOSPC) where this process may mount one (root), else a 32 kB file-size limit on the command (EFBIG: the
    same failed write, as tests/test_reliability_training.py::test_a_full_disk_is_one_line_naming_the_file)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True).returncode == 0
    try:
        if mounted:
            yield disk / "shards", None, "No space left on device"
        else:
            def small_files():
                resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 10, 32 << 10))

            yield disk / "shards", small_files, "File too large"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_under_two_workers_is_one_line_naming_the_shard_and_leaves_no_staging_file(big_folders,
                                                                                                full_disk):
    out, preexec, says = full_disk
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(_shard_cmd(big_folders, out), env=env, capture_output=True, text=True, timeout=300,
                         preexec_fn=preexec)
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert res.returncode == 2 and len(errors) == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert re.search(rf"{re.escape(str(out))}/train-\d{{6}}\.(tar|index\.json): cannot write the shard( index)? "
                     rf"\({says}\)", errors[0]), errors[0]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no staging file left
    assert len(list(out.glob("*.index.json"))) < 18                         # it did stop early
