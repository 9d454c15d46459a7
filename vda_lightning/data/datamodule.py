"""LightningDataModules: video clips with ground truth + image samples for training, exactly-once validation.

Every init argument is a plain typed value (the shards, the training stream) or a section dataclass (`augment:`,
`images:`, `val:`, `loader:`, `synthetic:`), so LightningCLI can set it from YAML. Shard arguments take a brace
pattern ('shards/train-{000000..000099}.tar'), '::'-joined patterns, a glob, a folder, or a list of these; for
`train_shards` a list means one *source* per entry, mixed per sample by `train_weights` (equal by default, the
paper's uniform sampling over datasets).

The training stream resumes exactly: `state_dict()` (saved by Lightning in every checkpoint) holds, for every
(rank, worker) reader, where it stands after the last step the training loop took; `load_state_dict()` (on
`--ckpt_path` and on a SLURM requeue) makes the readers continue from there. data/README.md §2 says when that
is exact and when it cannot be.

That saved position is read from a file, so it crosses the trust boundary (`vda_lightning.trust`): it is checked
against the `DataState` schema (`check_state`) when it is loaded and, before any reader uses it, every shard URL in
it must be one of the URLs the current config expands to (`check_position`). A state that breaks the schema or
names a shard (or a `pipe:` command) the config does not is refused as `DataStateError`: one line naming the
checkpoint and the place in the state, exit 2 from `vda fit`, nothing trained. A well-formed state saved with other
data settings, another world size or worker count, or another state version is no attack: the stream starts the
epoch afresh with a warning, and none of its URLs is used.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Annotated, Literal

import lightning as L
import torch
from annotated_types import Ge, Le, Len, Lt
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from pydantic import StringConstraints
from typing_extensions import TypedDict

from .. import trust
from ..io import gather_objects, rank_world
from ..io.benchmarks import BENCHMARKS
from ..models.input_contract import DEFAULT_CONTRACT, InputContract
from .datasets import ReaderState, TrainStream, ValStream
from .format import MAX_SIDE
from .shards import count_samples, expand_shards
from .streams import MAX_COUNT, STRICT, Count, DataStateError, check_source_state
from .synthetic_scenes import generate_synthetic_shards
from .transforms import AugmentConfig

log = logging.getLogger("vda_lightning.data")
STATE_VERSION = 1
MAX_RANKS, MAX_WORKERS = 65536, 1024  # bounds of a saved world size / worker count
__all__ = ["DataStateError", "ImageStreamConfig", "LoaderConfig", "StreamLayout", "SyntheticConfig", "ValConfig",
           "VideoDepthDataModule", "check_position", "check_state", "resume_plan"]


class RankState(TypedDict):
    """One rank's position: its epoch, the steps of it the training loop took, each of its readers' states."""

    __pydantic_config__ = STRICT
    epoch: Count
    consumed: Count
    readers: dict[Annotated[int, Ge(0), Lt(MAX_WORKERS)], ReaderState]


class DataState(TypedDict):
    """`VideoDepthDataModule.state_dict()` (version 1), as a checkpoint holds it."""

    __pydantic_config__ = STRICT
    version: Literal[1]
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    world_size: Annotated[int, Ge(1), Le(MAX_RANKS)]
    num_workers: Annotated[int, Ge(1), Le(MAX_WORKERS)]
    epoch_length: Annotated[int, Ge(1), Le(MAX_COUNT)]
    ranks: Annotated[list[RankState], Len(1, MAX_RANKS)]


class _Versioned(TypedDict):
    """The first look at a saved state: which layout it claims (other keys are read only for this version)."""

    version: Annotated[int, Ge(1)]


def check_state(state, what: str) -> dict | None:
    """A checkpoint's saved DataModule state, checked before any value of it is used: the validated copy, None for
    an empty state (a checkpoint written before the stream started), `{"version": v}` for another state version
    (never read further), or `DataStateError` in one line starting with `what` (the checkpoint) and the place."""
    if state is None or (isinstance(state, dict) and not state):
        return None
    version = trust.validate(_Versioned, state, what, error=DataStateError)["version"]
    if version != STATE_VERSION:
        return {"version": version}
    checked = trust.validate(DataState, state, what, error=DataStateError)
    if len(checked["ranks"]) != checked["world_size"]:
        raise DataStateError(f"{what}: ranks: {len(checked['ranks'])} rank position(s) for world_size "
                             f"{checked['world_size']}")
    for r, rank in enumerate(checked["ranks"]):
        if rank["consumed"] > checked["epoch_length"]:
            raise DataStateError(f"{what}: ranks.{r}.consumed: {rank['consumed']} steps taken of an epoch of "
                                 f"{checked['epoch_length']}")
        for reader in rank["readers"]:
            if reader >= checked["num_workers"]:
                raise DataStateError(f"{what}: ranks.{r}.readers.{reader}: no such reader with num_workers "
                                     f"{checked['num_workers']}")
    return checked


@dataclass(frozen=True)
class StreamLayout:
    """What the current config makes of a saved position: what it must match to continue the same stream, and the
    shards each source of a reader may name (`video_sources`: none when batch_size is 0; `image_urls`: None when a
    reader has no image source)."""

    fingerprint: str
    world_size: int
    num_workers: int
    epoch_length: int
    video_sources: tuple[tuple[str, ...], ...]
    image_urls: tuple[str, ...] | None
    shuffle_buffer: int
    image_shuffle_buffer: int


def mismatches(state: dict, layout: StreamLayout) -> list[str]:
    """Why a checked state cannot continue under `layout` (legitimate changes: the epoch then starts afresh)."""
    if state["version"] != STATE_VERSION:
        return [f"state version {state['version']} (this code writes {STATE_VERSION})"]
    problems = []
    if state["fingerprint"] != layout.fingerprint:
        problems.append("the data settings or shard files changed since the checkpoint")
    if (state["world_size"], state["num_workers"]) != (layout.world_size, layout.num_workers):
        problems.append(f"saved with {state['world_size']} rank(s) x {state['num_workers']} worker(s), "
                        f"now {layout.world_size} x {layout.num_workers}")
    return problems


def check_position(state: dict, layout: StreamLayout, what: str) -> None:
    """A checked state that matches `layout`, against the configured shards: every reader restores exactly the
    configured sources, and every shard URL it names (cursors, shuffle buffers) is one of that source's URLs.
    Run before any reader opens anything; `DataStateError` names the checkpoint and the place."""
    for r, rank in enumerate(state["ranks"]):
        for k, reader in rank["readers"].items():
            place = f"{what}: ranks.{r}.readers.{k}"
            if len(reader["video"]) != len(layout.video_sources):
                raise DataStateError(f"{place}.video: {len(reader['video'])} video source state(s), the config "
                                     f"has {len(layout.video_sources)}")
            for i, (source, urls) in enumerate(zip(reader["video"], layout.video_sources)):
                check_source_state(source, list(urls), layout.shuffle_buffer, f"{place}.video.{i}")
            if reader["image"] is not None:
                check_source_state(reader["image"], list(layout.image_urls or ()), layout.image_shuffle_buffer,
                                   f"{place}.image")


def resume_plan(state: dict, layout: StreamLayout, rank: int, epoch: int, what: str) -> tuple[int, dict | None]:
    """(epoch to start, plan for the readers or None = start it afresh) from a `check_state`-checked state.

    A mismatch with the layout is a warning and a fresh epoch; a position that names unconfigured shards is
    `DataStateError`. The plan holds only values that passed both checks.
    """
    problems = mismatches(state, layout)
    if problems:
        log.warning("data resume: cannot continue the saved sample stream (%s); epoch %d starts afresh, so "
                    "the samples differ from the uninterrupted run", "; ".join(problems), epoch)
        return epoch, None
    check_position(state, layout, what)
    mine = state["ranks"][rank]
    saved_epoch, consumed = mine["epoch"], mine["consumed"]
    if consumed >= layout.epoch_length:  # saved at the very end of an epoch: the next one starts fresh
        saved_epoch, consumed = saved_epoch + 1, 0
    if saved_epoch < epoch or consumed == 0:
        rank_zero_info(f"data resume: epoch {max(epoch, saved_epoch)} starts at its beginning, as in the "
                       "uninterrupted run")
        return max(epoch, saved_epoch), None
    remote = [u for src in layout.video_sources + (layout.image_urls or (),) for u in src if trust.is_remote(u)]
    if remote:
        log.warning("data resume: %d remote shard URL(s) (e.g. %s) are read again to restore the position; "
                    "the samples equal the uninterrupted run's only if those streams return the same bytes",
                    len(remote), remote[0])
    rank_zero_info(f"data resume: epoch {saved_epoch} continues after {consumed} of {layout.epoch_length} steps "
                   f"({len(mine['readers'])} reader(s) per rank restored, {layout.world_size} rank(s) x "
                   f"{layout.num_workers} worker(s)): the same samples as the uninterrupted run")
    return saved_epoch, {"epoch": saved_epoch, "consumed": consumed, "readers": dict(mine["readers"])}


def _hw(size: int | list[int], name: str = "crop_size", patch_size: int = DEFAULT_CONTRACT.patch_size
        ) -> tuple[int, int]:
    hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    return InputContract(patch_size=int(patch_size)).check_size(hw, f"data: {name}")


def check_counts(**values: tuple[int, int]) -> None:
    """{name: (value, minimum)}: ValueError naming the first argument below its minimum (checked at start-up,
    before any shard is read)."""
    for name, (value, minimum) in values.items():
        if value < minimum:
            raise ValueError(f"data: {name} {value} must be >= {minimum}")


@dataclass
class SyntheticConfig:
    """The `synthetic:` section: procedural scenes (data/README.md §5), written once into `dir` by
    `prepare_data` and used for every split whose shards are not given."""

    dir: str = "data/synthetic"
    train_clips: int = 256
    val_clips: int = 16
    images: int = 0          # single-frame image samples with pseudo-labels
    height: int = 112
    width: int = 154


@dataclass
class ImageStreamConfig:
    """The `images:` section: single frames mixed into every training step (from `image_shards`), fed to the model
    as one-frame clips."""

    batch_size: int = 0           # images per step (0: none)
    shuffle_buffer: int = 128     # raw samples held for shuffling
    need_target: bool = False     # skip images without a stored label (no teacher to label them online)


@dataclass
class ValConfig:
    """The `val:` section: how validation clips (from `val_shards`) are read and scored."""

    size: int | list[int] = 518   # short-side resize + centre crop, multiples of 14 (0: the stored size)
    clip_len: int = 0             # the first frames of each clip (0: the whole stored clip)
    batch_size: int = 1
    num_workers: int = 1
    # {validation dataset: registered benchmark} for streams whose dataset name is not the benchmark's own (a
    # stream named `kitti`, `bonn`, `scannet`, ... is scored by that benchmark anyway; `none`: the defaults)
    benchmarks: dict[str, str] | None = None


@dataclass
class LoaderConfig:
    """The `loader:` section: DataLoader options of both loaders (the worker counts set the readers and stay with
    their streams: `num_workers`, `val.num_workers`)."""

    pin_memory: bool = True       # used when CUDA is present
    prefetch_factor: int = 2      # steps each worker prepares ahead
    persistent_workers: bool = False


SECTIONS = ("augment", "images", "val", "loader", "synthetic")  # the DataModule's section arguments


class TrainLoader:
    """The training loader Lightning sees: `epoch_length` steps per epoch out of one DataLoader over the stream.

    It starts each epoch's reader streams (fresh, or continued from the DataModule's saved position) and yields
    only the steps the epoch still has. The position itself lives in the DataModule (`state_dict`); this object
    implements Lightning's stateful-loader protocol with an empty state only so that Lightning knows the loader
    resumes (and does not warn that it would not).
    """

    def __init__(self, datamodule: VideoDepthDataModule, loader: torch.utils.data.DataLoader):
        self.datamodule, self.loader, self._epochs = datamodule, loader, 0

    def __len__(self) -> int:
        return self.datamodule.epoch_length

    def __iter__(self):
        dm = self.datamodule
        trainer = dm._trainer_or_none()
        epoch = trainer.current_epoch if trainer is not None else self._epochs
        self._epochs += 1
        epoch, consumed = dm._begin_epoch(epoch)
        iterator = iter(self.loader)
        for _ in range(dm.epoch_length - consumed):
            yield next(iterator)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class VideoDepthDataModule(L.LightningDataModule):
    """Training: `epoch_length` steps per rank of {"video": B clips, "image": images.batch_size images}.

    Args: the shards (flat: data/README.md §1 patterns; `train_weights` mixes the `train_shards` sources); the
    training stream — clip_len frames per clip, crop_size output size (int or [h, w], multiples of patch_size: the
    model's patch, 14, or 16 for a DINOv3 backbone),
    batch_size clips per step, epoch_length steps per epoch, num_workers loader workers (readers), shuffle_buffer,
    seed; what a sample may hold — min_depth/max_depth mask metric depth outside them at read time (max_depth 0:
    no limit), max_frame_side: samples whose json claims a larger height or width are skipped as `bad_metadata`
    before anything is allocated; then one section per part: `augment:` (`transforms.AugmentConfig`) with
    augment_on — `cpu` in the loader workers, or `device`: the workers only decode and kornia applies the same
    draws on the accelerator after the copy (`data/device_augment.py`); `images:` (`ImageStreamConfig`), `val:`
    (`ValConfig`), `loader:` (`LoaderConfig`), `synthetic:` (`SyntheticConfig`: procedural scenes for any split
    not given). Counts and sizes are checked here, at start-up.
    """

    def __init__(
        self,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        image_shards: str | list[str] | None = None,
        train_weights: list[float] | None = None,
        clip_len: int = 32,
        crop_size: int | list[int] = 518,
        batch_size: int = 1,
        epoch_length: int = 1000,
        num_workers: int = 2,
        shuffle_buffer: int = 16,
        seed: int = 0,
        min_depth: float = 1e-3,
        max_depth: float = 0.0,
        max_frame_side: int = MAX_SIDE,
        augment: AugmentConfig | None = None,
        augment_on: str = "cpu",
        images: ImageStreamConfig | None = None,
        val: ValConfig | None = None,
        loader: LoaderConfig | None = None,
        synthetic: SyntheticConfig | None = None,
        patch_size: int = DEFAULT_CONTRACT.patch_size,
    ):
        super().__init__()
        self.augment = augment if augment is not None else AugmentConfig()
        self.images = images if images is not None else ImageStreamConfig()
        self.val = val if val is not None else ValConfig()
        self.loader = loader if loader is not None else LoaderConfig()
        self.synthetic = synthetic  # None: no synthetic data
        # Sections are stored as plain dicts: checkpoints hold hyper-parameters and load with weights_only.
        self.save_hyperparameters(ignore=list(SECTIONS))
        self.hparams.update({name: None if getattr(self, name) is None else dataclasses.asdict(getattr(self, name))
                             for name in SECTIONS})
        self.hp = self.hparams
        check_counts(clip_len=(clip_len, 1), batch_size=(batch_size, 0), num_workers=(num_workers, 0),
                     epoch_length=(epoch_length, 1), max_frame_side=(max_frame_side, 1),
                     **{"images.batch_size": (self.images.batch_size, 0), "val.clip_len": (self.val.clip_len, 0),
                        "val.batch_size": (self.val.batch_size, 1), "val.num_workers": (self.val.num_workers, 0)})
        if batch_size + self.images.batch_size < 1:
            raise ValueError("data: batch_size 0 and images.batch_size 0: a training step would hold no sample")
        if augment_on not in ("cpu", "device"):
            raise ValueError(f"data: augment_on must be 'cpu' or 'device', got {augment_on!r}")
        self.epoch_length = int(epoch_length)
        self.crop_hw = _hw(crop_size, "crop_size", patch_size)
        self.device_augmentation = None  # built on the first device-augmented batch
        self.val_hw = None if self.val.size in (0, [0], None) else _hw(self.val.size, "val.size", patch_size)
        self.val_benchmarks = self._check_benchmarks(self.val.benchmarks)
        self.train_ds: TrainStream | None = None
        self.val_ds: ValStream | None = None
        self._train_loader: TrainLoader | None = None
        self._resume: dict | None = None                          # loaded state, used by the next epoch start
        self._position = {"epoch": 0, "consumed": 0, "readers": {}}  # what the training loop has taken

    @staticmethod
    def _check_benchmarks(declared: dict[str, str] | None) -> dict[str, str | None]:
        out = {}
        for stream, name in (declared or {}).items():
            if name in (None, "", "none"):
                out[stream] = None
            elif name not in BENCHMARKS:
                raise ValueError(f"val.benchmarks.{stream}: {name!r} is not a registered benchmark "
                                 f"({', '.join(BENCHMARKS)}, or none)")
            else:
                out[stream] = name
        return out

    # -- preparation -------------------------------------------------------------------------------------------
    def _synthetic_kw(self) -> dict:
        syn, hp = self.synthetic, self.hp
        return dict(out_dir=syn.dir, n_train_clips=syn.train_clips, n_val_clips=syn.val_clips,
                    clip_len=max(hp.clip_len, self.val.clip_len), height=syn.height, width=syn.width, seed=hp.seed,
                    n_image_samples=syn.images)

    def prepare_data(self) -> None:
        if self.synthetic is not None:  # idempotent: complete shards are not rewritten
            generate_synthetic_shards(**self._synthetic_kw())

    def _spec(self, name: str):
        spec = getattr(self.hp, name)
        if spec or self.synthetic is None:
            return spec
        split = {"train_shards": "train", "val_shards": "val", "image_shards": "image"}[name]
        if split == "image" and not self.synthetic.images:
            return None
        return os.path.join(self.synthetic.dir, f"{split}-*.tar")

    def setup(self, stage: str | None = None) -> None:
        hp = self.hp
        if stage in (None, "fit") and self.train_ds is None:
            spec = self._spec("train_shards")
            if not spec:
                raise ValueError("train_shards is empty (set train_shards, or a synthetic: section)")
            sources = [expand_shards(s, "train_shards") for s in ([spec] if isinstance(spec, str) else spec)]
            image_urls = expand_shards(self._spec("image_shards"), "image_shards")
            images = self.images
            if images.batch_size and not image_urls:
                log.warning("images.batch_size=%d but no image_shards: training steps carry no images",
                            images.batch_size)
            self.train_ds = TrainStream(sources, hp.train_weights, image_urls, hp.clip_len, hp.batch_size,
                                        images.batch_size, self.augment, self.crop_hw, hp.min_depth,
                                        hp.max_depth, hp.shuffle_buffer, images.shuffle_buffer, hp.seed,
                                        max(1, hp.num_workers), images.need_target,
                                        hp.max_frame_side, hp.augment_on)
            n = count_samples([u for s in sources for u in s])
            log.info("train: %d video source(s), %s clips indexed, %d image shards; %d steps/epoch/rank",
                     len(sources), "?" if n is None else n, len(image_urls), self.epoch_length)
        if stage in (None, "fit", "validate", "test") and self.val_ds is None:
            spec = self._spec("val_shards")
            if spec:
                urls = expand_shards(spec, "val_shards")
                val = self.val
                self.val_ds = ValStream(urls, val.clip_len, self.val_hw, val.batch_size, hp.min_depth,
                                        hp.max_depth, max(1, val.num_workers), self.val_benchmarks,
                                        hp.max_frame_side)

    # -- loaders ------------------------------------------------------------------------------------------------
    def _trainer_or_none(self):
        return getattr(self, "trainer", None)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self._trainer_or_none()
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return rank_world(from_environment=True)

    def _loader_kw(self, workers: int) -> dict:
        loader = self.loader
        kw = dict(batch_size=None, num_workers=workers, pin_memory=loader.pin_memory and torch.cuda.is_available())
        if workers > 0:
            kw.update(prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers)
        return kw

    def train_dataloader(self):
        if self.train_ds is None:
            self.setup("fit")
        self.train_ds.set_distributed(*self._rank_world())
        if self._train_loader is None:
            loader = torch.utils.data.DataLoader(self.train_ds, **self._loader_kw(self.hp.num_workers))
            self._train_loader = TrainLoader(self, loader)
        return self._train_loader

    def val_dataloader(self):
        if self.val_ds is None:
            self.setup("validate")
        if self.val_ds is None:
            return []
        self.val_ds.set_distributed(*self._rank_world())
        return torch.utils.data.DataLoader(self.val_ds, **self._loader_kw(self.val.num_workers))

    # -- exact resume -------------------------------------------------------------------------------------------
    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """A training step the loop takes: keep its reader's position (and strip it from the batch)."""
        if isinstance(batch, dict) and "_reader" in batch:
            info = batch.pop("_reader")
            self._position["consumed"] += 1
            self._position["readers"][int(info["reader"])] = info["state"]
        return batch

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """`augment_on: device`: decode the JPEG frames the workers left as bytes and augment the training step's
        clips and images, where they now are."""
        if self.hp.augment_on != "device" or not isinstance(batch, dict):
            return batch
        for part in ("video", "image"):
            if batch.get(part) is not None and "augment_params" in batch[part]:
                if self.device_augmentation is None:
                    from .device_augment import DeviceAugmentation

                    self.device_augmentation = DeviceAugmentation(self.crop_hw)
                from .device_decode import decode_deferred  # JPEG frames the workers left as bytes

                part_batch = decode_deferred(batch[part], batch[part]["augment_params"].device)
                batch[part] = self.device_augmentation(part_batch)
        return batch

    def _fingerprint(self) -> str:
        """What must not change for a saved position to mean the same samples: shards (and local sizes), mixing,
        sampling, augmentation, seed, epoch length."""
        ds = self.train_ds
        shards = [[(u, None if trust.is_remote(u) else os.path.getsize(u) if os.path.exists(u) else -1) for u in src]
                  for src in ds.video_sources + [ds.image_urls]]
        desc = [shards, ds.weights.tolist(), ds.clip_len, ds.batch_size, ds.image_batch_size,
                dataclasses.asdict(ds.aug), list(ds.out_hw), ds.min_depth, ds.max_depth, ds.shuffle_buffer,
                ds.image_shuffle_buffer, ds.seed, ds.image_need_target, self.epoch_length]
        if ds.augment_on != "cpu":  # (so that checkpoints of the CPU path keep their fingerprint)
            desc.append(ds.augment_on)
        return hashlib.sha1(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]

    def state_dict(self) -> dict:
        """The training stream's position on every rank: {"ranks": [{"epoch", "consumed", "readers"}, ...], ...}.

        Collective under DDP (every rank calls it inside `trainer.save_checkpoint`); rank 0 writes it.
        """
        if self.train_ds is None:
            return {}
        pos = self._position
        local = {"epoch": int(pos["epoch"]), "consumed": int(pos["consumed"]), "readers": dict(pos["readers"])}
        return {"version": STATE_VERSION, "fingerprint": self._fingerprint(), "world_size": self._rank_world()[1],
                "num_workers": max(1, self.hp.num_workers), "epoch_length": self.epoch_length,
                "ranks": gather_objects(local)}

    def load_state_dict(self, state: dict) -> None:
        """Keep a checkpoint's saved position for the next epoch start, checked first (`check_state`; with the
        training config known, as under `vda fit`, also `check_position`): a malformed state or one naming
        unconfigured shards is `DataStateError` here, before anything trains."""
        what = self._state_what()
        self._resume = check_state(state, what)
        if self._resume is not None and self.train_ds is not None:
            layout = self._layout()
            if not mismatches(self._resume, layout):
                check_position(self._resume, layout, what)

    def _state_what(self) -> str:
        trainer = self._trainer_or_none()
        ckpt = getattr(trainer, "ckpt_path", None) if trainer is not None else None
        return f"{trust.display(ckpt) if ckpt else 'checkpoint'}: VideoDepthDataModule state"

    def _layout(self) -> StreamLayout:
        ds = self.train_ds
        return StreamLayout(
            fingerprint=self._fingerprint(), world_size=self._rank_world()[1], num_workers=max(1, self.hp.num_workers),
            epoch_length=self.epoch_length,
            video_sources=tuple(tuple(src) for src in ds.video_sources) if ds.batch_size else (),
            image_urls=tuple(ds.image_urls) if ds.image_batch_size and ds.image_urls else None,
            shuffle_buffer=ds.shuffle_buffer, image_shuffle_buffer=ds.image_shuffle_buffer)

    def _begin_epoch(self, epoch: int) -> tuple[int, int]:
        """Set the stream up for `epoch`: (epoch actually started, steps of it already taken)."""
        state, self._resume = self._resume, None
        plan, consumed = None, 0
        trainer = self._trainer_or_none()
        if state is None and trainer is not None and trainer.ckpt_path and not self._position["consumed"]:
            log.warning("data resume: the checkpoint %s holds no VideoDepthDataModule position; the training "
                        "stream starts epoch %d afresh (samples differ from the uninterrupted run)",
                        trainer.ckpt_path, epoch)
        elif state is not None:
            epoch, plan = resume_plan(state, self._layout(), self._rank_world()[0], epoch, self._state_what())
            consumed = 0 if plan is None else plan["consumed"]
        self.train_ds.resume = plan
        self.train_ds.epoch[0] = epoch
        self._position = {"epoch": epoch, "consumed": consumed, "readers": dict(plan["readers"]) if plan else {}}
        return epoch, consumed

    # -- reporting ----------------------------------------------------------------------------------------------
    def skip_counts(self) -> dict[str, dict[str, int]]:
        """Good/skipped sample counts per stream and reason (this rank, all its workers, since start)."""
        out = {}
        if self.train_ds is not None:
            out["train_video"] = self.train_ds.video_counters.as_dict()
            out["train_image"] = self.train_ds.image_counters.as_dict()
        if self.val_ds is not None:
            out["val"] = self.val_ds.counters.as_dict()
        return out

    def data_metrics(self) -> dict[str, float]:
        """Flat {"data/<stream>_<reason>": count} of the non-zero counters, ready for LightningModule.log_dict."""
        return {f"data/{stream}_{k}": float(v) for stream, c in self.skip_counts().items()
                for k, v in c.items() if v}
