"""`vda submit` (alias `vda-submit`): render an sbatch script for a `vda fit` run, save it beside the run, submit it.

    vda submit --config conf/quickstart.yaml --run-dir runs/qs --nodes 2 --gpus-per-node 8 --dry-run
    vda submit --config conf/quickstart.yaml --run-dir runs/qs --gpus-per-node 0 --tasks-per-node 2   # CPU DDP
    vda submit ... -- --trainer.max_steps 20000          # everything after `--` goes to vda fit unchanged
    vda submit ... --run-dir runs/qs --resume            # continue the run in runs/qs (a fresh one is refused there)
    vda submit --find-checkpoint runs/qs                # the checkpoint a restart resumes from (or nothing)

The rendered script calls the `vda-fit` and `vda-submit` aliases (the same code as `vda fit` / `vda submit`).

The run folder is vda-fit's (`--trainer.default_root_dir`): checkpoints, logger files, the saved config and the
final validation table go there, beside the rendered script and the SLURM logs.

Lightning's SLURMEnvironment needs one srun task per device (`--ntasks-per-node` == `trainer.devices`) and the
processes launched by `srun`; the script does both. `--signal=USR1@S` asks SLURM to warn every task S seconds
before the time limit; `RequeueOnSignal` then saves and requeues, and the restarted script resumes from the newest
valid checkpoint in the run folder. See docs/cluster.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ..cli import errors
from ..cli.options import HelpFormatter
from ..io import write_text_atomic

PROG = "vda-submit"

# What may reach the script (issue: a newline in any value used to inject a shell line): no value holds a control
# character; job names (also the script's file name) are plain names; every value that reaches the shell goes
# through shlex.quote; #SBATCH values that are not plain are double-quoted with backslash escapes, which is how
# sbatch reads its directives (quotes group, a backslash escapes, an unquoted `#` starts a comment).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SBATCH_PLAIN = re.compile(r"[A-Za-z0-9_.,:@%+=/-]*")
SBATCH_OPTION = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*")

# Job names with which Lightning's SLURMEnvironment switches itself off (lightning/fabric/plugins/environments/
# slurm.py, `_is_slurm_interactive_mode`: SLURM_JOB_NAME "bash" or "interactive", compared exactly): such a job
# would run without SLURM rank detection or requeue (docs/cluster.md).
INTERACTIVE_JOB_NAMES = ("bash", "interactive")

REQUEUE_CALLBACK = "vda_lightning.cluster.requeue.RequeueOnSignal"
SCALE_CALLBACK = "vda_lightning.cluster.ddp_report.DDPScaleReport"


@dataclasses.dataclass
class SubmitOptions:
    config: str
    run_dir: str
    nodes: int = 1
    gpus_per_node: int = 1
    tasks_per_node: int | None = None  # only for CPU runs (gpus_per_node == 0); GPU runs use one task per GPU
    cpus_per_task: int = 8
    mem: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    job_name: str = "vda-fit"
    resume: bool = False  # submit into a run folder that already holds a run (the job resumes it)
    strategy: str = "ddp"
    signal_seconds: int = 120
    env_setup: list[str] = dataclasses.field(default_factory=list)
    sbatch_extra: list[str] = dataclasses.field(default_factory=list)
    fit_args: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        positive = {"nodes": self.nodes, "cpus_per_task": self.cpus_per_task, "signal_seconds": self.signal_seconds}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be ≥ 1, got {value}")
        if self.gpus_per_node < 0:
            raise ValueError(f"--gpus-per-node must be ≥ 0, got {self.gpus_per_node}")
        if self.gpus_per_node > 0 and self.tasks_per_node not in (None, self.gpus_per_node):
            raise ValueError(
                f"--tasks-per-node {self.tasks_per_node} != --gpus-per-node {self.gpus_per_node}: Lightning's SLURM "
                "environment needs exactly one task per GPU")
        if self.tasks_per_node is not None and self.tasks_per_node < 1:
            raise ValueError(f"--tasks-per-node must be ≥ 1, got {self.tasks_per_node}")
        self._check_text()

    def _check_text(self) -> None:
        """Refuse values that could change the script's lines (see CONTROL, JOB_NAME)."""
        single = {"config": self.config, "run-dir": self.run_dir, "mem": self.mem, "partition": self.partition,
                  "account": self.account, "qos": self.qos, "time": self.time, "job-name": self.job_name,
                  "strategy": self.strategy}
        many = {"env-setup": self.env_setup, "sbatch": self.sbatch_extra, "vda fit argument": self.fit_args}
        for name, value in [*single.items(), *((n, v) for n, vs in many.items() for v in vs)]:
            if value is not None and CONTROL.search(str(value)):
                label = name if name.startswith("vda") else f"--{name}"
                raise ValueError(f"{label} {str(value)!r}: control characters (newline, tab, ...) are not allowed")
        if not JOB_NAME.fullmatch(self.job_name):
            raise ValueError(f"--job-name {self.job_name!r}: use letters, digits, '.', '_' and '-' (starting with a "
                             "letter or digit, at most 128); it also names the script file in <run-dir>/slurm/")
        if self.job_name in INTERACTIVE_JOB_NAMES:
            raise ValueError(f"--job-name {self.job_name}: Lightning treats a SLURM job of that name as an interactive "
                             "shell and switches its SLURM detection off (no ranks from SLURM, no requeue); choose "
                             "another name")
        if not self.run_dir.strip() or not self.config.strip():
            raise ValueError("--config and --run-dir must not be empty")
        for extra in self.sbatch_extra:
            option = extra if extra.startswith("-") else "--" + extra
            if not SBATCH_OPTION.fullmatch(option.split("=", 1)[0]):
                raise ValueError(f"--sbatch {extra!r}: expected an sbatch option like --exclusive or "
                                 "--constraint=a100")
            if sets_job_name(option):
                raise ValueError(f"--sbatch {extra!r}: set the job name with --job-name (it is checked there and "
                                 "names the script)")

    @property
    def devices(self) -> int:
        """Processes per node = srun tasks per node = trainer.devices."""
        return self.gpus_per_node or self.tasks_per_node or 1

    @property
    def accelerator(self) -> str:
        return "gpu" if self.gpus_per_node else "cpu"


def sets_job_name(option: str) -> bool:
    """Whether an extra sbatch option sets the job name: `--job-name`, an abbreviation sbatch's getopt_long accepts
    (`--job`, `--job-n`), or `-J` (also written `J`, which becomes `--J`)."""
    name = option.split("=", 1)[0]
    if name.startswith("--"):
        long = name[2:]
        return long.startswith("J") or (len(long) >= 2 and "job-name".startswith(long))
    return name[1:].startswith("J")


def sbatch_quote(value: str) -> str:
    """A value as sbatch reads it from a `#SBATCH` line: plain values as they are, others double-quoted with
    backslash escapes (Slurm's `src/sbatch/opt.c`, `_get_argument`: quotes group characters, a backslash escapes
    the next one, an unquoted `#` ends the directive)."""
    value = str(value)
    if SBATCH_PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _directive(option: str) -> str:
    key, sep, value = option.partition("=")
    return key + (sep + sbatch_quote(value) if sep else "")


def sbatch_directives(o: SubmitOptions) -> list[str]:
    log = os.path.join(o.run_dir, "slurm", "%x-%j.out")
    lines = [f"--job-name={o.job_name}", f"--nodes={o.nodes}", f"--ntasks-per-node={o.devices}",
             f"--cpus-per-task={o.cpus_per_task}"]
    if o.gpus_per_node:
        lines.append(f"--gres=gpu:{o.gpus_per_node}")
    lines += [f"--{key}={value}" for key, value in
              (("mem", o.mem), ("partition", o.partition), ("account", o.account), ("qos", o.qos), ("time", o.time))
              if value]
    # USR1 to every task (not only the batch shell) signal_seconds before the limit; requeue allowed; both runs of
    # a requeued job append to the same per-job log.
    lines += [f"--signal=USR1@{o.signal_seconds}", "--requeue", "--open-mode=append", f"--output={log}"]
    lines += [extra if extra.startswith("--") else "--" + extra for extra in o.sbatch_extra]
    return ["#SBATCH " + _directive(line) for line in lines]


def fit_command(o: SubmitOptions) -> list[str]:
    run_dir = o.run_dir
    return ["vda-fit", "--config", o.config,
            "--trainer.accelerator", o.accelerator, "--trainer.strategy", o.strategy,
            "--trainer.num_nodes", str(o.nodes), "--trainer.devices", str(o.devices),
            "--trainer.default_root_dir", run_dir,
            f"--trainer.callbacks+={REQUEUE_CALLBACK}", f"--trainer.callbacks+={SCALE_CALLBACK}",
            *o.fit_args]


def render_sbatch(o: SubmitOptions, now: datetime.datetime | None = None) -> str:
    """The whole batch script as text (a pure function of the options; `now` only stamps the header)."""
    stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
    q = shlex.quote
    fit = " ".join(q(a) for a in fit_command(o))
    body = [
        "#!/bin/bash",
        f"# Rendered by vda-submit at {stamp}. {o.nodes} node(s) x {o.devices} {o.accelerator} task(s).",
        *sbatch_directives(o),
        "",
        "set -euo pipefail",
        *o.env_setup,
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        f"RUN_DIR={q(o.run_dir)}",
        'echo "[vda-submit] job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST}"',
        "",
        "# Resume from the newest valid checkpoint of this run, if any (a requeued job restarts this script).",
        'RESUME="$(vda-submit --find-checkpoint "$RUN_DIR")"',
        "RESUME_ARGS=()",
        'if [ -n "$RESUME" ]; then echo "[vda-submit] resuming from $RESUME"; RESUME_ARGS=(--ckpt_path "$RESUME"); fi',
        "",
        "# One task per device, launched by srun (what Lightning's SLURMEnvironment expects). The batch shell",
        "# forwards a SIGUSR1 sent to it alone (scancel --signal=USR1 --batch) to the tasks.",
        f'srun --kill-on-bad-exit=1 {fit} "${{RESUME_ARGS[@]}}" &',
        "STEP=$!",
        "trap 'kill -USR1 \"$STEP\" 2>/dev/null || true' USR1",
        'while kill -0 "$STEP" 2>/dev/null; do wait "$STEP" || true; done',
        'wait "$STEP"',
        "",
    ]
    return "\n".join(body)


def submit(o: SubmitOptions, dry_run: bool = False) -> str:
    """Save the script as `<run_dir>/slurm/<job_name>.sbatch`; print it (dry run) or sbatch it. Returns the job id
    (or the script text for a dry run)."""
    if dry_run:
        return render_sbatch(o)
    if not os.path.isfile(o.config):
        raise FileNotFoundError(f"{o.config}: training config not found")
    from .resume import existing_run

    found = existing_run(o.run_dir)
    if found is not None and not o.resume:
        raise ValueError(f"run folder {o.run_dir} already holds a run ({found}); pass --resume to continue it "
                         "(the job resumes from its newest valid checkpoint), or choose another --run-dir")
    # The job may start in another folder than this one: pin the paths.
    o = dataclasses.replace(o, config=os.path.abspath(o.config), run_dir=os.path.abspath(o.run_dir))
    script = render_sbatch(o)
    path = Path(o.run_dir) / "slurm" / f"{o.job_name}.sbatch"
    write_text_atomic(path, script, mode=0o755)  # also creates the log folder, which sbatch does not
    try:
        result = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    except FileNotFoundError as e:
        raise RuntimeError("sbatch not found: run vda-submit on a SLURM login node (or use --dry-run)") from e
    if result.returncode != 0:
        raise RuntimeError(f"sbatch {path} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip().split(";")[0]


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter,
                                epilog="Arguments after `--` are passed to vda-fit unchanged.")
    p.add_argument("--config", help="training recipe for vda-fit (YAML)")
    p.add_argument("--run-dir", help="run folder: checkpoints, logs, the rendered script, SLURM logs")
    p.add_argument("--nodes", type=int, default=1, help="nodes")
    p.add_argument("--gpus-per-node", type=int, default=1, help="0 = CPU run (DDP over gloo)")
    p.add_argument("--tasks-per-node", type=int, help="CPU runs only: processes per node (default 1)")
    p.add_argument("--cpus-per-task", type=int, default=8, help="CPUs per task (dataloader workers + 1)")
    p.add_argument("--mem", help="memory per node, e.g. 64G")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--account", help="SLURM account")
    p.add_argument("--qos", help="SLURM quality of service")
    p.add_argument("--time", help="time limit, e.g. 24:00:00")
    p.add_argument("--job-name", default="vda-fit", help="SLURM job name")
    p.add_argument("--strategy", default=SubmitOptions.strategy, help="Lightning DDP strategy name")
    p.add_argument("--signal-seconds", type=int, default=120,
                   help="SIGUSR1 this many seconds before the time limit (save + requeue)")
    p.add_argument("--env-setup", action="append", default=[], metavar="LINE",
                   help="shell line run before training (module load ..., source .venv/bin/activate); repeatable")
    p.add_argument("--sbatch", action="append", default=[], dest="sbatch_extra", metavar="OPTION",
                   help="extra #SBATCH option, e.g. --sbatch=--exclusive --sbatch=--constraint=a100; repeatable")
    p.add_argument("--resume", action="store_true",
                   help="the run folder already holds this run: submit a job that continues it")
    p.add_argument("--dry-run", action="store_true", help="print the script instead of submitting it")
    p.add_argument("--find-checkpoint", metavar="RUN_DIR",
                   help="print the newest valid checkpoint under RUN_DIR (nothing if none) and exit")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fit_args = argv[argv.index("--") + 1:] if "--" in argv else []
    ours = argv[:argv.index("--")] if "--" in argv else argv
    parser = build_parser(prog)
    a = parser.parse_args(ours)
    if a.find_checkpoint:
        from .resume import find_resume_checkpoint

        found = find_resume_checkpoint(a.find_checkpoint)
        if found:
            print(found)
        return errors.EXIT_OK
    if not a.config or not a.run_dir:
        parser.error("--config and --run-dir are required")
    fields = {f.name for f in dataclasses.fields(SubmitOptions)}

    def run() -> None:
        opts = SubmitOptions(**{k: v for k, v in vars(a).items() if k in fields}, fit_args=fit_args)
        print(submit(opts, dry_run=a.dry_run))
        if not a.dry_run:
            print(f"script and logs in {Path(opts.run_dir).resolve() / 'slurm'}", file=sys.stderr)

    return errors.run_command(prog, run, known=(ValueError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
