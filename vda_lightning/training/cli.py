"""`vda-fit`: train the head from a YAML recipe (LightningCLI, omegaconf interpolation).

    vda-fit --config conf/quickstart.yaml
    vda-fit --config conf/quickstart.yaml --trainer.default_root_dir runs/exp2    # another run folder
    vda-fit --config conf/paper/vits_stage2.yaml --trainer.devices 8 --trainer.num_nodes 2
    vda-fit --config conf/quickstart.yaml --ckpt_path last          # resume the run in that folder
    vda-fit --config conf/quickstart.yaml --print_config            # the fully resolved config
    vda validate --config conf/quickstart.yaml --ckpt_path last     # validate_main: one checkpoint's table

One run folder per experiment: `trainer.default_root_dir` (the run folder) holds the saved `config.yaml`,
`checkpoints/` (unless `checkpoint.dirpath` says otherwise), the logger's files (loggers whose `save_dir` is
not set) and `final_validation.json`. A checkpoint folder written as `${trainer.default_root_dir}/...` follows the
final run folder, also one set after it (a later `--config` or `--trainer.default_root_dir` on the command line).
A fresh run refuses a folder that already holds a run (a checkpoint or results): resume it with `--ckpt_path last`
(a SLURM requeue resumes by itself) or choose another folder. A folder that holds only what an interrupted start
wrote (Ctrl-C during the first validation: `config.yaml`, logger files) holds nothing to resume: a fresh run may
start there again.

The `model:` section is a task (`training/tasks/`): `class_path: vda_lightning.training.MetricDepthTask` for metric
depth, `RelativeDepthTask` (the paper's recipe) when a recipe names none; its other keys are that task's arguments.

The config is checked completely before any model, data or trainer is built: unknown keys, wrong types, renamed
keys (`model.metric` is the task now), paths that do not exist (shards, init checkpoint, teacher, ckpt_path) and
the run folder; each problem is one line on stderr and exit code 2. Top-level keys besides the LightningCLI ones:
`ckpt_path`, `validate_before_fit` (a validation pass before training, so that the final table shows before vs
after) and `results_file` (JSON of that table; default `<run folder>/final_validation.json`).
"""
from __future__ import annotations

import os
import signal
import sys

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from . import config_checks
from .callbacks import SaveRunConfig
from .checkpoint_io import (
    AtomicCheckpointIO,
    ConfineSavedCheckpointPaths,
    RemoveStaleStaging,
    ResumeError,
    resolve_resume_path,
)
from .results import format_results_table, write_results
from .signals import SaveOnSignal, SignalExit, interrupted_by_ctrl_c
from .tasks import DepthTask

PROG = "vda-fit"


def current_prog() -> str:
    """`vda fit` when the `vda` dispatcher runs us (cli/commands.py puts it in argv[0] for LightningCLI), else
    vda-fit: error lines name the command the user typed."""
    name = sys.argv[0] if sys.argv else ""
    return name if name.startswith("vda ") else PROG


def fail(message: str, code: int = 2, prog: str | None = None):
    """One line on stderr, then exit: configuration problems are not tracebacks."""
    from ..cli import errors

    errors.report(prog or current_prog(), message)
    sys.exit(code)


def _loggers(spec) -> list:
    return list(spec) if isinstance(spec, list | tuple) else [spec]


class VDAArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, its report on a class_path section (model, data) cut to the line naming the key."""

    def error(self, message: str, ex: Exception | None = None):
        return super().error(config_checks.one_line_parse_error(message), ex)


class VDACLI(LightningCLI):
    """vda-fit's LightningCLI. `trains=False` (vda validate): the same checks and run folder, but no fresh-run
    refusal and no default `results_file` (a validation must not replace the training run's final table)."""

    def __init__(self, *args, prog: str | None = None, trains: bool = True, **kwargs):
        self.prog, self.trains = prog or current_prog(), trains  # set before LightningCLI parses (its __init__ does)
        super().__init__(*args, parser_class=VDAArgumentParser, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # A recipe without model.class_path trains the relative task; its model: keys are that task's arguments.
        parser.set_defaults({"model": {"class_path": config_checks.DEFAULT_TASK}})
        # No version counter: a re-run into the same folder replaces last.ckpt rather than writing last-v1.ckpt,
        # which resume (`--ckpt_path last`, SLURM requeue) would never pick up.
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_train_steps": 1000,
                             "checkpoint.enable_version_counter": False})
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="resume from this checkpoint ('last' = <checkpoint.dirpath>/last.ckpt)")
        parser.add_argument("--validate_before_fit", type=bool, default=False,
                            help="validate once before training (the final table then shows before vs after)")
        parser.add_argument("--results_file", type=str | None, default=None,
                            help="write the final validation table as JSON here (default: <run folder>/"
                                 "final_validation.json)")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        argv = sys.argv[1:] if args is None else args
        if isinstance(argv, list | tuple):
            argv = [str(a) for a in argv]
            problem = config_checks.renamed_key_problem(argv) or config_checks.model_task_problem(argv)
            if problem:
                fail(problem, prog=self.prog)
            # omegaconf resolves `${trainer.default_root_dir}` inside each config file, before a later run folder
            # applies: the checkpoint folder is set again from the final one (issue 24: a resume into a new folder
            # wrote into, and deleted checkpoints of, the recipe's default run).
            dirpath = config_checks.checkpoint_dirpath_for_final_root(argv)
            if dirpath is not None:
                argv.append(f"--checkpoint.dirpath={dirpath}")
                if args is None:  # as LightningCLI parses sys.argv, without its warning about given args
                    self.config = parser.parse_args(argv)
                    return
                args = argv
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        """Derive the run folder's parts from `trainer.default_root_dir`, then check paths and the folder."""
        config = self.config
        root = config.trainer.default_root_dir
        if root:
            root = str(root)
            if config.checkpoint.dirpath is None:
                config.checkpoint.dirpath = os.path.join(root, "checkpoints")
            for logger in _loggers(config.trainer.logger):
                init = getattr(logger, "init_args", None)
                if init is not None and hasattr(init, "save_dir") and init.save_dir is None:
                    init.save_dir = root
            if config.get("results_file") is None and self.trains:
                config.results_file = os.path.join(root, "final_validation.json")
        problems = config_checks.path_problems(config, training=self.trains)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            fail(problems[0] + more, prog=self.prog)
        fresh = config.get("ckpt_path") is None and not config_checks.is_requeued_restart()
        if root and fresh and self.trains and config_checks.launcher_rank() == 0:
            found = config_checks.existing_run(root, config.checkpoint.dirpath)
            if found is not None:
                fail(f"run folder {root} already holds a run ({found}); resume it with --ckpt_path last, "
                     f"or start a new run with --trainer.default_root_dir <another folder>", prog=self.prog)

    def instantiate_classes(self) -> None:
        """A value the model, data or trainer refuses (clip_len 0, crop_size 50, encoder vitx, ...) is one line and
        exit status 2 at start-up, not a traceback (the classes check their arguments in __init__)."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as e:
            fail(_instantiation_problem(e), prog=self.prog)

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a user's own CheckpointIO plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        # Every run: SIGTERM (and SIGUSR1 without the requeue callback) saves at the next step and exits 128+n;
        # staging files a killed run left in the checkpoint folder are removed at the start.
        # A resumed checkpoint's ModelCheckpoint paths are confined before Lightning deletes any of them.
        trainer.callbacks[:0] = [SaveOnSignal(), RemoveStaleStaging(), ConfineSavedCheckpointPaths()]
        return trainer


def _final_validation(cli: VDACLI, before: dict | None) -> None:
    trainer, model = cli.trainer, cli.model
    if not (cli.datamodule is not None and _has_val(cli.datamodule)):
        return
    trainer.validate(model, datamodule=cli.datamodule, verbose=False)
    if not trainer.is_global_zero or not model.val_results:
        return
    print(f"\nValidation after {trainer.global_step} steps:\n" + format_results_table(before, model.val_results))
    path = cli.config.get("results_file")
    if not path and trainer.checkpoint_callback is not None and trainer.checkpoint_callback.dirpath:
        path = os.path.join(trainer.checkpoint_callback.dirpath, "final_validation.json")
    if path:
        write_results(path, before, model.val_results, trainer.global_step)
        print(f"(written to {path})")


def _has_val(datamodule: LightningDataModule) -> bool:
    return type(datamodule).val_dataloader is not LightningDataModule.val_dataloader


def build(args: list[str] | None = None) -> VDACLI:
    """Parse and check the config, then build model, data and trainer (nothing runs yet)."""
    from .quiet import silence_known_noise

    silence_known_noise()  # before Lightning starts: its notices that a user cannot act on (training/quiet.py)
    return VDACLI(
        DepthTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        save_config_callback=SaveRunConfig,
        save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,  # the module builds AdamW + schedule from its own arguments
        args=args,
    )


def run(args: list[str] | None = None) -> VDACLI:
    """Parse, train, validate; returns the CLI object (for tests and scripts)."""
    cli = build(args)
    before = None
    if cli.config.get("validate_before_fit") and cli.config.get("ckpt_path") is None:
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        before = dict(cli.model.val_results)
    ckpt_path = resolve_resume_path(cli.config.get("ckpt_path"), _checkpoint_folder(cli.trainer))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    _final_validation(cli, before)
    _close_wandb()
    return cli


def _close_wandb() -> None:
    """Finish an open wandb run now, so its offline files are complete before the process exits."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _checkpoint_folder(trainer) -> str | None:
    callback = trainer.checkpoint_callback
    return None if callback is None or not callback.dirpath else str(callback.dirpath)


def _instantiation_problem(e: BaseException) -> str:
    """The class's own message out of jsonargparse's union report ("Does not validate against any of the Union
    subtypes ... Errors: - <message> - Expected a <class 'NoneType'>"), else the exception's first line."""
    lines = [line.strip() for line in str(e).splitlines()]
    if "Errors:" in lines:
        for line in lines[lines.index("Errors:") + 1:]:
            if not line.startswith("- "):
                break
            if not line.startswith("- Expected a "):
                return line[2:]
    return lines[0] if lines and lines[0] else type(e).__name__


def main(args: list[str] | None = None) -> None:
    """Console entry point: returns None so that `sys.exit(main())` exits 0 after a good run.

    Known failures end in one line: a checkpoint that cannot be resumed from or read, or whose saved state is
    malformed or names shards the config does not (the DataModule's `DataStateError`; exit 2, nothing trained), a
    file that cannot be written (a full disk: the line names the file, exit 2); a stop by SIGTERM/SIGUSR1 exits
    128 + the signal (after saving at the next step boundary when one runs, `training/signals.py`); Ctrl-C exits
    130 without saving.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from ..checkpoints import CheckpointError
    from ..data.streams import DataStateError

    try:
        run(args)
    except SignalExit:
        raise
    except SIGTERMException:  # Lightning stopped outside a training step (validation, start-up): nothing new saved
        # (before `SystemExit`, of which it is a subclass with status 0: caught there, a stopped run exited 0)
        fail("SIGTERM while no training step ran (validation or start-up): stopped without saving; resume from "
             "the newest checkpoint (--ckpt_path last)", 128 + signal.SIGTERM)
    except SystemExit as e:  # Lightning ends a Ctrl-C inside fit/validate with sys.exit(1)
        if e.code == 1 and interrupted_by_ctrl_c():
            fail("interrupted (Ctrl-C): stopped without saving; resume from the newest checkpoint with --ckpt_path "
                 "last (a run folder that holds none may be started afresh)", 130)
        raise
    except KeyboardInterrupt:  # outside Lightning's loops (start-up)
        fail("interrupted (Ctrl-C) before training: nothing was saved", 130)
    except (ResumeError, CheckpointError, DataStateError) as e:
        fail(str(e))
    except OSError as e:
        fail(str(e) if e.filename else f"{e.strerror or e} (errno {e.errno})")


def validate_main(args: list[str] | None = None) -> int:
    """`vda validate --config RECIPE --ckpt_path CKPT|last`: one validation pass of CKPT's weights on the recipe's
    validation data, printed as the table `vda fit` ends with (and written to `results_file` when set).

    Without --ckpt_path the recipe's initial weights are validated. Returns the exit status (cli/errors.py).
    """
    from ..cli import errors

    prog = os.path.basename(sys.argv[0]) if args is None else "vda validate"
    cli = VDACLI(DepthTask, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                 save_config_callback=None,  # validating must not rewrite the training run's config.yaml
                 parser_kwargs={"parser_mode": "omegaconf"}, auto_configure_optimizers=False, args=args,
                 prog=prog, trains=False)
    trainer, ckpt = cli.trainer, cli.config.get("ckpt_path")
    if ckpt == "last":
        folder = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
        ckpt = os.path.join(folder, "last.ckpt") if folder else None
        if ckpt is None:
            return errors.fail(prog, "--ckpt_path last: the recipe sets no checkpoint.dirpath; pass the file")
    if ckpt is not None and not os.path.isfile(ckpt):
        return errors.fail(prog, f"{ckpt}: no such checkpoint file")
    if not (cli.datamodule and _has_val(cli.datamodule)):
        return errors.fail(prog, "the recipe's data has no validation set")
    from ..checkpoints import CheckpointError
    from ..data.streams import DataStateError

    try:
        trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
    except (ResumeError, CheckpointError, DataStateError) as e:
        return errors.fail(prog, str(e))
    if trainer.is_global_zero:
        step = _checkpoint_step(ckpt)
        print(f"\nValidation of {ckpt or 'the initial weights'}" + (f" (step {step})" if step is not None else "")
              + ":\n" + format_results_table(None, cli.model.val_results))
        if cli.config.get("results_file"):
            write_results(cli.config["results_file"], None, cli.model.val_results, step or 0)
            print(f"(written to {cli.config['results_file']})")
    _close_wandb()
    return errors.EXIT_OK


def _checkpoint_step(path: str | None) -> int | None:
    if path is None:
        return None
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step"))
    except Exception:  # an older or foreign file: the table is still right, only the step is unknown
        return None


if __name__ == "__main__":
    main()
