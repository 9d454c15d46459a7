"""A throw-away one-node SLURM cluster on localhost for the cluster tests.

It follows the recipe in the field notes (munged as user munge, slurmctld + slurmd with a minimal slurm.conf:
proctrack/linuxproc, task/none, jobacct_gather/none, select/cons_tres CR_Core, SlurmUser=root). Everything it
writes lives under one temp dir: its own munge socket and key copy, state, spool and logs, so it never touches a
munged or slurm.conf that the machine may already run. Daemons run in the foreground (-F / -D) so the pid we hold
is the daemon's pid; `stop()` ends exactly those pids.

Usable as a script for manual experiments:  python tests/helpers/slurm_cluster.py  (starts, prints SLURM_CONF, waits).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "sinfo", "squeue", "scontrol", "scancel")


class SlurmUnavailable(RuntimeError):
    """SLURM is not installed or could not be started here (the tests skip with this message)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_slurm_conf(root: Path, host: str, cpus: int, munge_socket: Path, ports: tuple[int, int]) -> str:
    """The minimal slurm.conf; every path lives under `root`. Comments say why the non-obvious values are set."""
    return "\n".join([
        "ClusterName=vdatest",
        f"SlurmctldHost={host}",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        # cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
        f"AuthInfo=socket={munge_socket},cred_expire=10",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # No cgroups inside containers: plain /proc process tracking and no task binding.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "SwitchType=switch/none",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/run/slurmctld.pid",
        f"SlurmdPidFile={root}/run/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # Requeue must be allowed (Lightning's auto-requeue calls `scontrol requeue $SLURM_JOB_ID`).
        "JobRequeue=1",
        # Lightning handles SIGTERM itself; give it a few seconds before SIGKILL, not the default 30.
        "KillWait=5",
        # Keep finished jobs visible to `scontrol show job` long enough for the tests to read their state.
        "MinJobAge=300",
        "SchedulerType=sched/backfill",
        "SchedulerTimeSlice=30",
        # The node must come back by itself after a slurmd restart or an unexpected kill, never stay DOWN.
        "ReturnToService=2",
        "SlurmdTimeout=60",
        "InactiveLimit=0",
        "MessageTimeout=20",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
        "",
    ])


class LocalSlurmCluster:
    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="vda-slurm-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "slurm.conf"
        self.host = socket.gethostname().split(".")[0]
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # -- start ------------------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> LocalSlurmCluster:
        missing = [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
        if missing:
            raise SlurmUnavailable(f"SLURM/munge not installed (missing {', '.join(missing)}); "
                                   "apt-get install slurm-wlm munge")
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmd/munged needs root (SlurmUser=root, munged as user munge)")
        try:
            pwd.getpwnam("munge")
        except KeyError as e:
            raise SlurmUnavailable("no 'munge' user; the munge package is not installed properly") from e
        try:
            self._start_munge()
            self._start_slurm()
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        mu = pwd.getpwnam("munge")
        os.chmod(self.root, 0o755)  # munge must traverse it
        mdir = self.root / "munge"
        mdir.mkdir(mode=0o700)
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(128))
        os.chmod(key, 0o400)
        for p in (mdir, key):
            os.chown(p, mu.pw_uid, mu.pw_gid)
        self.munge_socket = mdir / "munge.socket"
        cmd = [_sbin("munged"), "-F", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
               f"--pid-file={mdir}/munged.pid", f"--log-file={mdir}/munged.log", f"--seed-file={mdir}/munged.seed"]
        self._spawn("munged", cmd, user="munge")
        _wait_for(lambda: self.munge_socket.exists(), 15, lambda: self._why("munged", mdir / "munged.log"))

    def _start_slurm(self) -> None:
        for d in ("state", "spool", "run", "log", "jobs"):
            (self.root / d).mkdir(exist_ok=True)
        ports = (_free_port(), _free_port())
        self.conf.write_text(render_slurm_conf(self.root, self.host, os.cpu_count() or 1, self.munge_socket, ports))
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", [_sbin("slurmd"), "-D", "-f", str(self.conf)])

    def _spawn(self, name: str, cmd: list[str], user: str | None = None) -> None:
        log = open(self.root / f"{name}.stdout", "wb")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, user=user,
                                            start_new_session=True)
        log.close()

    def _wait_idle(self, timeout: float) -> None:
        def idle() -> bool:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with {p.returncode}: {self._why(name)}")
            r = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
            return r.returncode == 0 and r.stdout.strip() == "idle"
        _wait_for(idle, timeout, lambda: "node never became idle: " + self._why("slurmctld",
                                                                                self.root / "log/slurmctld.log"))

    def _why(self, name: str, log: Path | None = None) -> str:
        text = ""
        for f in (self.root / f"{name}.stdout", log):
            if f is not None and f.exists():
                text += f.read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if "error" in ln.lower() or "fatal" in ln.lower()]
        return (lines or text.splitlines() or ["(no log)"])[-1]

    # -- use ---------------------------------------------------------------------------------------------------
    def run(self, cmd: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def job_field(self, job_id: str, field: str) -> str | None:
        r = self.run(["scontrol", "show", "job", "-o", job_id], check=False)
        for tok in r.stdout.split():
            if tok.startswith(field + "="):
                return tok.split("=", 1)[1]
        return None

    def wait_job(self, job_id: str, timeout: float, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                                            "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.job_field(job_id, "JobState")
            if state in states:
                return state
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s")

    # -- stop --------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel what is left, then end the daemons we started, by pid (slurmd first, munged last)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run(["scancel", "--user", "root", "--full"], check=False, timeout=10)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _wait_for(cond, timeout: float, why) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise SlurmUnavailable(why())


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout`/kill still stop the daemons
    with LocalSlurmCluster() as c:
        print(f"export SLURM_CONF={c.conf}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
