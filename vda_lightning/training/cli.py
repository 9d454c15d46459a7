"""`vda-fit`: train the head from a YAML recipe (LightningCLI, omegaconf interpolation).

    vda-fit --config conf/quickstart.yaml
    vda-fit --config conf/paper/vits_stage2.yaml --trainer.devices 8 --trainer.num_nodes 2
    vda-fit --config conf/quickstart.yaml --ckpt_path last          # resume from <checkpoint.dirpath>/last.ckpt
    vda-fit --config conf/quickstart.yaml --print_config            # the fully resolved config
    vda validate --config conf/quickstart.yaml --ckpt_path last     # validate_main: one checkpoint's table

The config is checked completely (unknown keys, wrong types) before any model, data or trainer is built.
Top-level keys besides the LightningCLI ones: `ckpt_path`, `validate_before_fit` (a validation pass before
training, so that the final table shows before vs after) and `results_file` (JSON of that table).
"""
from __future__ import annotations

import os
import sys

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .callbacks import SaveConfigBesideCheckpoints
from .checkpoint_io import AtomicCheckpointIO
from .module import VideoDepthModule
from .results import format_results_table, write_results


class VDACLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # No version counter: a re-run into the same folder replaces last.ckpt rather than writing last-v1.ckpt,
        # which resume (`--ckpt_path last`, SLURM requeue) would never pick up.
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_train_steps": 1000,
                             "checkpoint.enable_version_counter": False})
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="resume from this checkpoint ('last' = <checkpoint.dirpath>/last.ckpt)")
        parser.add_argument("--validate_before_fit", type=bool, default=False,
                            help="validate once before training (the final table then shows before vs after)")
        parser.add_argument("--results_file", type=str | None, default=None,
                            help="write the final validation table as JSON here (default: beside the checkpoints)")

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a user's own CheckpointIO plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def _final_validation(cli: VDACLI, before: dict | None) -> None:
    trainer, model = cli.trainer, cli.model
    if not trainer.val_dataloaders and not (cli.datamodule and _has_val(cli.datamodule)):
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


def run(args: list[str] | None = None) -> VDACLI:
    """Parse, train, validate; returns the CLI object (for tests and scripts)."""
    cli = VDACLI(
        VideoDepthModule,
        LightningDataModule,
        subclass_mode_data=True,
        run=False,
        save_config_callback=SaveConfigBesideCheckpoints,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,  # the module builds AdamW + schedule from its own arguments
        args=args,
    )
    before = None
    if cli.config.get("validate_before_fit") and cli.config.get("ckpt_path") is None:
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        before = dict(cli.model.val_results)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    _final_validation(cli, before)
    _close_wandb()
    return cli


def _close_wandb() -> None:
    """Finish an open wandb run now, so its offline files are complete before the process exits."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def main(args: list[str] | None = None) -> None:
    """Console entry point: returns None so that `sys.exit(main())` exits 0 after a good run."""
    run(args)


def validate_main(args: list[str] | None = None) -> int:
    """`vda validate --config RECIPE --ckpt_path CKPT|last`: one validation pass of CKPT's weights on the recipe's
    validation data, printed as the table `vda fit` ends with (and written to `results_file` when set).

    Without --ckpt_path the recipe's initial weights are validated. Returns the exit status (cli/errors.py).
    """
    from ..cli import errors

    prog = os.path.basename(sys.argv[0]) if args is None else "vda validate"
    cli = VDACLI(VideoDepthModule, LightningDataModule, subclass_mode_data=True, run=False,
                 save_config_callback=None,  # validating must not rewrite the training run's config.yaml
                 parser_kwargs={"parser_mode": "omegaconf"}, auto_configure_optimizers=False, args=args)
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
    trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
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
