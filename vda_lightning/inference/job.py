"""One `vda infer` / `vda pseudolabel` job across however many processes a launcher started: this rank's share,
skipping what is complete, completion records, the job's progress on rank 0, and the one manifest at the end.
The decisions are pure functions in `distributed.py`; this module does the file work.

Ranks talk only through small files in the job folder (`--job-dir`; `<output-dir>/.vda-job` under a launcher),
so the same code runs under torchrun, srun, a SLURM job array whose tasks never run at the same time, or a
re-run of a killed job, and needs no process group (no collective can hang on a rank that died):

    <job-dir>/done/<name>.json             completion record of one input (written after its outputs)
    <job-dir>/ranks/<plan>/progress-R.json rank R's counts, rewritten every few seconds (rank 0 sums them)
    <job-dir>/ranks/<plan>/rank-R.json     rank R's report, written when its share is finished
    <job-dir>/manifest.json                inputs -> outputs, status, checkpoint sha256, settings: written by the
                                           rank that completes the set of reports (under a lock)

`<plan>` is the digest of the input list, the world size, the checkpoint and the settings: reports of another
plan never mix into this one's manifest.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from ..io import launch_rank_world, write_json_atomic
from ..trust import ReadError, display, read_json
from .distributed import (
    CompletionRecord,
    RankReport,
    balanced_shares,
    digest,
    fingerprint,
    job_totals,
    merge_manifest,
    record_matches,
    record_name,
    share_line,
    totals_line,
)

PROGRESS_SECONDS = float(os.environ.get("VDA_PROGRESS_SECONDS", 10))
PEER_SILENCE_SECONDS = 600.0  # rank 0 stops waiting for peers whose progress files have not changed for this long


class ShardedJob:
    """This process's part of a job over `inputs` (paths as given), named `names` (unique output names), weighed
    by `weights` (frames or bytes). `job_dir` None: no records, no skipping, no manifest (one process, as before)."""

    def __init__(self, *, prog: str, command: str, inputs: list[str], names: list[str], weights: list[int],
                 job_dir: str | os.PathLike | None, out_dir: str | os.PathLike, checkpoint_sha256: str,
                 settings: dict, progress: bool = True, unit: str = "frames", env: dict | None = None):
        self.prog, self.inputs, self.names, self.weights, self.unit = prog, inputs, names, weights, unit
        self.rank, self.world, self.local_rank = launch_rank_world(env)
        self.share = balanced_shares(weights, self.world)[self.rank]
        self.out_dir = Path(out_dir)
        self.job_dir = None if job_dir is None else Path(job_dir)
        self.checkpoint_sha256, self.settings_sha256 = checkpoint_sha256, digest(settings)
        self.header = {"command": command, "checkpoint_sha256": checkpoint_sha256, "settings": settings,
                       "settings_sha256": self.settings_sha256, "output_dir": os.path.abspath(out_dir)}
        plan = digest({"inputs": inputs, "names": names, "world": self.world, "checkpoint": checkpoint_sha256,
                       "settings": self.settings_sha256})[:16]
        self.ranks_dir = None if self.job_dir is None else self.job_dir / "ranks" / plan
        self.entries: list[dict] = []
        self.frames_done = self.inputs_done = self.frames_computed = 0
        self.start = time.perf_counter()
        self.show_totals = progress and self.rank == 0 and self.world > 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.ranks_dir is not None:
            self._rank_file().unlink(missing_ok=True)  # a report of an earlier run of this rank never counts

    # -- this rank's share -------------------------------------------------------------------------------------
    def log_share(self) -> None:
        if self.world > 1:
            print(f"{self.prog}: {share_line(self.rank, self.world, self.share, self.names, self.weights, self.unit)}",
                  file=sys.stderr, flush=True)

    def _expected(self, i: int) -> dict:
        return {"input": self.inputs[i], "name": self.names[i], "fingerprint": fingerprint(self.inputs[i]),
                "checkpoint_sha256": self.checkpoint_sha256, "settings_sha256": self.settings_sha256}

    def completed(self, i: int) -> CompletionRecord | None:
        """The input's completion record if it says the input is complete (same input, checkpoint, settings;
        outputs present), else None. An unreadable record counts as absent: the input is redone."""
        if self.job_dir is None:
            return None
        path = self.job_dir / "done" / record_name(self.names[i])
        if not path.exists():
            return None
        try:
            record = read_json(path, "completion record", schema=CompletionRecord)
        except ReadError:
            return None
        return record if record_matches(record, self._expected(i), self.out_dir) else None

    def reuse(self, i: int, record: CompletionRecord, done: int | None = None) -> None:
        """Count input `i` as complete from an earlier run (`done`: its weight in the job's unit; default frames)."""
        self.entries.append({"index": i, "input": self.inputs[i], "name": self.names[i], "status": "complete",
                             "reused": True, "frames": record["frames"], "outputs": record["outputs"]})
        self.frames_done += record["frames"] if done is None else done
        self.inputs_done += 1

    def complete(self, i: int, outputs: list[str], frames: int) -> None:
        """Record input `i` as complete, after all its `outputs` (relative to the output folder) are in place."""
        if self.job_dir is not None:
            record = {**self._expected(i), "outputs": outputs, "frames": frames}
            write_json_atomic(self.job_dir / "done" / record_name(self.names[i]), record)
        self.entries.append({"index": i, "input": self.inputs[i], "name": self.names[i], "status": "complete",
                             "reused": False, "frames": frames, "outputs": outputs})
        self.inputs_done += 1

    def fail(self, i: int, error: str) -> None:
        self.entries.append({"index": i, "input": self.inputs[i], "name": self.names[i], "status": "failed",
                             "reused": False, "frames": 0, "outputs": [], "error": error})
        self.inputs_done += 1

    def tick(self, frames: int = 1) -> None:
        """`frames` more computed (called from the runner's finisher thread)."""
        self.frames_done += frames
        self.frames_computed += frames

    # -- progress across ranks ---------------------------------------------------------------------------------
    def _progress(self) -> dict:
        return {"rank": self.rank, "frames_done": self.frames_done, "inputs_done": self.inputs_done,
                "frames_computed": self.frames_computed, "seconds": time.perf_counter() - self.start}

    def _progress_file(self, rank: int) -> Path:
        return self.ranks_dir / f"progress-{rank:05d}.json"

    def _rank_file(self, rank: int | None = None) -> Path:
        return self.ranks_dir / f"rank-{self.rank if rank is None else rank:05d}.json"

    def _read_all(self, kind: str) -> dict[int, dict]:
        found = {}
        for rank in range(self.world):
            path = self._rank_file(rank) if kind == "rank" else self._progress_file(rank)
            with contextlib.suppress(ReadError, OSError):
                if path.exists():
                    found[rank] = read_json(path, f"{kind} file")
        return found

    def totals(self) -> dict:
        progress = dict(self._read_all("progress")) if self.ranks_dir is not None else {}
        progress[self.rank] = self._progress()
        return job_totals(list(progress.values()), sum(self.weights), len(self.inputs))

    def _beat(self) -> None:
        if self.ranks_dir is not None:
            with contextlib.suppress(OSError):
                write_json_atomic(self._progress_file(self.rank), self._progress())
        if self.show_totals:
            print(f"{self.prog}: {totals_line(self.totals(), self.world, self.unit)}", file=sys.stderr, flush=True)

    def __enter__(self) -> ShardedJob:
        self.start = time.perf_counter()  # rates count the work on inputs, not the model's loading
        if self.world > 1:
            def loop():
                while not self._stop.wait(PROGRESS_SECONDS):
                    self._beat()
            self._thread = threading.Thread(target=loop, name="vda-job-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # -- the end -----------------------------------------------------------------------------------------------
    def finish(self) -> Path | None:
        """Write this rank's report; rank 0 (in a launch whose ranks run together) waits for the others, showing
        the totals; whichever rank completes the set of reports writes the manifest. Returns its path if written."""
        if self.ranks_dir is None:
            return None
        self._beat()
        report: RankReport = {"rank": self.rank, "world": self.world, "entries": self.entries,
                              "frames_computed": self.frames_computed, "seconds": time.perf_counter() - self.start}
        write_json_atomic(self._rank_file(), report)
        if self.rank == 0 and self.world > 1 and os.environ.get("VDA_SHARD_OVER_ARRAY") != "1":
            self._wait_for_peers()
        if self.rank == 0 and self.world > 1:  # the job's totals as rank 0 last saw them (also with --no-progress)
            print(f"{self.prog}: {totals_line(self.totals(), self.world, self.unit)}", file=sys.stderr, flush=True)
        return self._write_manifest()

    def _wait_for_peers(self) -> None:
        last_change, seen, shown = time.monotonic(), None, time.monotonic()
        while len(self._read_all("rank")) < self.world:
            stamp = [p.stat().st_mtime_ns for p in self.ranks_dir.glob("*.json")]
            if stamp != seen:
                last_change, seen = time.monotonic(), stamp
            elif time.monotonic() - last_change > PEER_SILENCE_SECONDS:
                print(f"{self.prog}: rank 0: no news from the other ranks for {PEER_SILENCE_SECONDS:.0f} s; the "
                      "rank that finishes last writes the manifest", file=sys.stderr)
                return
            if self.show_totals and time.monotonic() - shown >= PROGRESS_SECONDS:
                shown = time.monotonic()
                print(f"{self.prog}: {totals_line(self.totals(), self.world, self.unit)}", file=sys.stderr, flush=True)
            time.sleep(min(PROGRESS_SECONDS, 1.0))

    def _write_manifest(self) -> Path | None:
        import fcntl

        lock_path = self.ranks_dir / ".manifest.lock"
        with open(lock_path, "a") as lock:  # two ranks finishing together: one merges after the other
            fcntl.flock(lock, fcntl.LOCK_EX)
            reports = self._read_all("rank")
            if len(reports) < self.world:
                return None
            key = digest([reports[r] for r in sorted(reports)])
            marker = self.ranks_dir / ".manifest-of"
            if marker.exists() and marker.read_text() == key:
                return None  # a rank that finished at the same time wrote it from these very reports
            try:
                manifest = merge_manifest([reports[r] for r in sorted(reports)], self.header, len(self.inputs))
            except (KeyError, TypeError, ValueError) as e:
                print(f"{self.prog}: {display(self.ranks_dir)}: rank reports cannot be merged ({e})", file=sys.stderr)
                return None
            path = self.job_dir / "manifest.json"
            write_json_atomic(path, manifest)
            marker.write_text(key)
        t = manifest["totals"]
        print(f"{self.prog}: job: {t['complete']}/{t['inputs']} inputs complete ({t['reused']} already were), "
              f"{t['failed']} failed, {t['frames_computed']} frames computed at {t['frames_per_second']:.2f} "
              f"frames/s over {self.world} rank(s); manifest {display(path)}", file=sys.stderr)
        return path
