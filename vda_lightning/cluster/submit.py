"""`vda submit` (alias `vda-submit`): render an sbatch script for a `vda fit` run (or a `vda infer` / `vda
pseudolabel` job), save it beside the run, submit it.

    vda submit --config conf/quickstart.yaml --run-dir runs/qs --nodes 2 --gpus-per-node 8 --dry-run
    vda submit --config conf/quickstart.yaml --run-dir runs/qs --gpus-per-node 0 --tasks-per-node 2   # CPU DDP
    vda submit ... -- --trainer.max_steps 20000          # everything after `--` goes to vda fit unchanged
    vda submit ... --run-dir runs/qs --resume            # continue the run in runs/qs (a fresh one is refused there)
    vda submit --find-checkpoint runs/qs                # the checkpoint a restart resumes from (or nothing)
    vda submit infer --run-dir runs/inf --gpus-per-node 8 -- --inputs videos.txt --checkpoint vda.pth --output-dir d
    vda submit pseudolabel --run-dir runs/pl --array-size 4 -- 'shards/{000..099}.tar' --output pl ...

The script runs where it lands, whatever PATH the node gives it: it calls the interpreter that ran `vda submit`
by its absolute path (`<python> -m vda_lightning fit`; `--python` names another, e.g. a container's), runs the
`--env-setup` lines, and `cd`s to the folder `vda submit` ran in, so relative paths mean what they meant there.
`--dry-run` runs every check a real submission runs and prints the script it would submit; a submission that
fails (sbatch missing or refusing) leaves nothing behind.

`vda submit infer|pseudolabel`: one srun task per GPU (or `--tasks-per-node` CPU processes) on each node, or
`--array-size K` array tasks of that size; each task takes its share of the inputs (inference/job.py), the run
folder is the job folder (completion records, manifest.json, the SLURM logs), `--signal=B:USR1@S` makes the batch
shell requeue the job before the time limit, and a requeued (or re-submitted) job skips what is complete.

The run folder is vda-fit's (`--trainer.default_root_dir`): checkpoints, logger files, the saved config and the
final validation table go there, beside the rendered script and the SLURM logs.

Lightning's SLURMEnvironment needs one srun task per device (`--ntasks-per-node` == `trainer.devices`) and the
processes launched by `srun`; the script does both. `--signal=USR1@S` asks SLURM to warn every task S seconds
before the time limit; `RequeueOnSignal` then saves and requeues, and the restarted script resumes from the newest
valid checkpoint in the run folder. See docs/cluster.md.
"""
from __future__ import annotations

import argparse
import contextlib
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

TASKS = ("infer", "pseudolabel")  # `vda submit <task>`: the sharded inference commands (else a vda fit run)
REQUEUE_CALLBACK = "vda_lightning.cluster.requeue.RequeueOnSignal"
SCALE_CALLBACK = "vda_lightning.cluster.ddp_report.DDPScaleReport"


@dataclasses.dataclass
class SubmitOptions:
    config: str | None
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
    fit_args: list[str] = dataclasses.field(default_factory=list)  # the command's arguments (after `--`)
    command: str = "fit"  # or one of TASKS
    array_size: int = 1  # TASKS: a job array of this many tasks, sharing the inputs
    python: str = dataclasses.field(default_factory=lambda: sys.executable)  # the interpreter the job runs
    workdir: str = dataclasses.field(default_factory=os.getcwd)  # where the job starts (relative paths)

    def __post_init__(self):
        if self.command not in ("fit", *TASKS):
            raise ValueError(f"unknown command {self.command!r}: fit, {', '.join(TASKS)}")
        if self.command == "fit" and (self.config is None or self.array_size != 1):
            raise ValueError("a vda fit run needs --config and takes no --array-size (DDP runs one job)")
        if self.command != "fit" and (self.config is not None or self.resume):
            raise ValueError(f"vda submit {self.command} takes no --config or --resume: its arguments go after "
                             "`--`, and a job re-submitted into its run folder continues it")
        if any(a == "--job-dir" or a.startswith("--job-dir=") for a in self.fit_args):
            raise ValueError("--job-dir: under vda submit the run folder is the job folder (--run-dir)")
        if not os.path.isabs(self.python):
            raise ValueError(f"--python {self.python!r}: give the interpreter's absolute path (the job's PATH is "
                             "not the submitting shell's)")
        positive = {"nodes": self.nodes, "cpus_per_task": self.cpus_per_task, "signal_seconds": self.signal_seconds,
                    "array_size": self.array_size}
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
                  "strategy": self.strategy, "python": self.python, "workdir": self.workdir}
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
        if not self.run_dir.strip() or (self.config is not None and not self.config.strip()):
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
    log = os.path.join(o.run_dir, "slurm", "%x-%A_%a.out" if o.array_size > 1 else "%x-%j.out")
    lines = [f"--job-name={o.job_name}", f"--nodes={o.nodes}", f"--ntasks-per-node={o.devices}",
             f"--cpus-per-task={o.cpus_per_task}"]
    if o.gpus_per_node:
        lines.append(f"--gres=gpu:{o.gpus_per_node}")
    lines += [f"--{key}={value}" for key, value in
              (("mem", o.mem), ("partition", o.partition), ("account", o.account), ("qos", o.qos), ("time", o.time))
              if value]
    # USR1 to every task (not only the batch shell) signal_seconds before the limit; requeue allowed; both runs of
    # a requeued job append to the same per-job log.
    # Inference jobs: USR1 to the batch shell alone (B:), which requeues the job; complete inputs are kept.
    signal = f"USR1@{o.signal_seconds}" if o.command == "fit" else f"B:USR1@{o.signal_seconds}"
    lines += [f"--signal={signal}", "--requeue", "--open-mode=append", f"--output={log}"]
    if o.array_size > 1:
        lines.append(f"--array=0-{o.array_size - 1}")
    lines += [extra if extra.startswith("--") else "--" + extra for extra in o.sbatch_extra]
    return ["#SBATCH " + _directive(line) for line in lines]


def vda(o: SubmitOptions, command: str) -> list[str]:
    """`<python> -m vda_lightning <command>`: no PATH lookup on the node."""
    return [o.python, "-m", "vda_lightning", command]


def fit_command(o: SubmitOptions) -> list[str]:
    run_dir = o.run_dir
    return [*vda(o, "fit"), "--config", o.config,
            "--trainer.accelerator", o.accelerator, "--trainer.strategy", o.strategy,
            "--trainer.num_nodes", str(o.nodes), "--trainer.devices", str(o.devices),
            "--trainer.default_root_dir", run_dir,
            f"--trainer.callbacks+={REQUEUE_CALLBACK}", f"--trainer.callbacks+={SCALE_CALLBACK}",
            *o.fit_args]


def task_command(o: SubmitOptions) -> list[str]:
    """`vda infer|pseudolabel` with the user's arguments; the run folder is its job folder."""
    return [*vda(o, o.command), *o.fit_args, "--job-dir", o.run_dir]


def _head(o: SubmitOptions, now: datetime.datetime | None) -> list[str]:
    stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
    array = f" x {o.array_size} array tasks" if o.array_size > 1 else ""
    q = shlex.quote
    return [
        "#!/bin/bash",
        f"# Rendered by vda-submit at {stamp}. {o.nodes} node(s) x {o.devices} {o.accelerator} task(s){array}.",
        *sbatch_directives(o),
        "",
        "set -euo pipefail",
        *o.env_setup,
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        f"cd {q(o.workdir)}",
        f"RUN_DIR={q(o.run_dir)}",
        'echo "[vda-submit] job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST}"',
        "",
    ]


def render_task_sbatch(o: SubmitOptions, now: datetime.datetime | None = None) -> str:
    """The batch script of a `vda infer` / `vda pseudolabel` job (pure, like `render_sbatch`)."""
    launch = " ".join(shlex.quote(a) for a in task_command(o))
    body = [
        *_head(o, now),
        *(["export VDA_SHARD_OVER_ARRAY=1  # the array's tasks share the inputs (io/distributed.py)"]
          if o.array_size > 1 else []),
        'JOB_REF="$SLURM_JOB_ID"',
        'if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then JOB_REF="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"; fi',
        "# Near the time limit: requeue. Complete inputs have their records; the restarted job does the rest.",
        "trap 'echo \"[vda-submit] USR1: requeueing $JOB_REF\"; scontrol requeue \"$JOB_REF\"' USR1",
        f"srun --kill-on-bad-exit=1 {launch} &",
        "STEP=$!",
        'while kill -0 "$STEP" 2>/dev/null; do wait "$STEP" || true; done',
        'wait "$STEP"',
        "",
    ]
    return "\n".join(body)


def render_sbatch(o: SubmitOptions, now: datetime.datetime | None = None) -> str:
    """The whole batch script as text (a pure function of the options; `now` only stamps the header)."""
    if o.command != "fit":
        return render_task_sbatch(o, now)
    q = shlex.quote
    fit = " ".join(q(a) for a in fit_command(o))
    find = " ".join(q(a) for a in vda(o, "submit"))
    body = [
        *_head(o, now),
        "# Resume from the newest valid checkpoint of this run, if any (a requeued job restarts this script).",
        f'RESUME="$({find} --find-checkpoint "$RUN_DIR")"',
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


def checked(o: SubmitOptions) -> SubmitOptions:
    """Every check a submission runs (the dry run too), and the options with the paths pinned: the job may start
    in another folder than this one."""
    if o.command == "fit":
        if not os.path.isfile(o.config):
            raise FileNotFoundError(f"{o.config}: training config not found")
        from .resume import existing_run

        found = existing_run(o.run_dir)
        if found is not None and not o.resume:
            raise ValueError(f"run folder {o.run_dir} already holds a run ({found}); pass --resume to continue it "
                             "(the job resumes from its newest valid checkpoint), or choose another --run-dir")
    elif not o.fit_args:
        raise ValueError(f"vda submit {o.command}: give the {o.command} arguments after `--` (inputs, "
                         "--checkpoint, --output-dir ...)")
    config = None if o.config is None else os.path.abspath(o.config)
    return dataclasses.replace(o, config=config, run_dir=os.path.abspath(o.run_dir))


def submit(o: SubmitOptions, dry_run: bool = False) -> str:
    """Save the script as `<run_dir>/slurm/<job_name>.sbatch`; print it (dry run) or sbatch it. Returns the job id
    (or the script text for a dry run). A submission that fails removes what it wrote."""
    o = checked(o)
    script = render_sbatch(o)
    if dry_run:
        return script
    path = Path(o.run_dir) / "slurm" / f"{o.job_name}.sbatch"
    created = [p for p in (Path(o.run_dir), path.parent) if not p.exists()]
    write_text_atomic(path, script, mode=0o755)  # also creates the log folder, which sbatch does not
    try:
        try:
            result = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
        except FileNotFoundError as e:
            raise RuntimeError("sbatch not found: run vda-submit on a SLURM login node (or use --dry-run)") from e
        if result.returncode != 0:
            raise RuntimeError(f"sbatch {path} failed ({result.returncode}): {result.stderr.strip()}")
    except BaseException:
        path.unlink(missing_ok=True)
        for folder in reversed(created):  # only folders this submission made, and only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return result.stdout.strip().split(";")[0]


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter,
                                usage=f"{prog} [infer|pseudolabel] [options] [-- ARGUMENTS]",
                                epilog="`vda submit --config ...` submits a vda fit run; `vda submit infer ...` and "
                                       "`vda submit pseudolabel ...` a sharded inference job. Arguments after `--` "
                                       "are passed to that command unchanged. docs/cluster.md.")
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
    p.add_argument("--job-name", default=None, help="SLURM job name (default: vda-fit, vda-infer, vda-pseudolabel)")
    p.add_argument("--array-size", type=int, default=1, metavar="K",
                   help="infer/pseudolabel: a job array of K tasks (each of --nodes x tasks) sharing the inputs")
    p.add_argument("--python", default=sys.executable, metavar="PATH",
                   help="the interpreter the job runs, by absolute path (default: the one running vda submit)")
    p.add_argument("--strategy", default=SubmitOptions.strategy, help="Lightning DDP strategy name")
    p.add_argument("--signal-seconds", type=int, default=120,
                   help="SIGUSR1 this many seconds before the time limit (save + requeue)")
    p.add_argument("--env-setup", action="append", default=[], metavar="LINE",
                   help="shell line run before the job (module load ..., export ...); repeatable")
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
    command = argv.pop(0) if argv and argv[0] in TASKS else "fit"
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
    if command == "fit" and (not a.config or not a.run_dir):
        parser.error("--config and --run-dir are required")
    if not a.run_dir:
        parser.error("--run-dir is required")
    a.job_name = f"vda-{command}" if a.job_name is None else a.job_name
    fields = {f.name for f in dataclasses.fields(SubmitOptions)}

    def run() -> None:
        opts = SubmitOptions(**{k: v for k, v in vars(a).items() if k in fields}, fit_args=fit_args,
                             command=command)
        print(submit(opts, dry_run=a.dry_run))
        if not a.dry_run:
            print(f"script and logs in {Path(opts.run_dir).resolve() / 'slurm'}", file=sys.stderr)

    return errors.run_command(prog, run, known=(ValueError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
