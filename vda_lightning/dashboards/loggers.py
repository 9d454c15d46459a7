"""Logger set-up from config: wandb (online/offline) or a CSV fallback.

`vda_logger(...)` is a plain function returning a Lightning ``Logger`` so that LightningCLI YAML can name it:

    trainer:
      logger:
        class_path: vda_lightning.dashboards.vda_logger
        init_args: {project: vda, group: quickstart, tags: [vitt]}

Mode resolution (``resolve_wandb_mode``) is pure and never touches the network unless credentials exist and the
caller asked for ``auto``; then one short TCP probe decides between online and offline. Clusters without internet
therefore get an offline run (``wandb sync`` later) without any wait.
"""

from __future__ import annotations

import importlib.metadata
import netrc
import os
import platform
import socket
import subprocess
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

MODES = ("auto", "online", "offline", "disabled")
DEFAULT_WANDB_HOST = "https://api.wandb.ai"
# Versions worth knowing when two runs disagree; looked up by distribution name.
RECORDED_PACKAGES = ("vda-lightning", "torch", "torchvision", "lightning", "timm", "torchmetrics", "wandb",
                     "numpy", "kornia", "webdataset", "av", "opencv-python-headless")


def wandb_host(env: Mapping[str, str]) -> str:
    """Host name of the wandb server (WANDB_BASE_URL or the public one)."""
    return urlparse(env.get("WANDB_BASE_URL") or DEFAULT_WANDB_HOST).hostname or "api.wandb.ai"


def has_wandb_credentials(env: Mapping[str, str], netrc_path: str | None = None) -> bool:
    """True when an API key is in the environment or a netrc entry exists for the wandb host."""
    if env.get("WANDB_API_KEY"):
        return True
    path = netrc_path or env.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return False
    try:
        return netrc.netrc(path).authenticators(wandb_host(env)) is not None
    except (netrc.NetrcParseError, OSError):
        return False  # an unreadable netrc cannot log us in either


def host_reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    """One TCP connect with a short timeout; False on any error (DNS, refused, timeout)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_wandb_mode(requested: str, env: Mapping[str, str], *, credentials: bool,
                       probe: Callable[[], bool]) -> str:
    """Decide 'online' | 'offline' | 'disabled'.

    The environment wins over the config (operators set WANDB_MODE / WANDB_DISABLED per cluster). ``auto`` goes
    online only with credentials and a reachable server; ``probe`` is called only in that one case.
    """
    if requested not in MODES:
        raise ValueError(f"wandb mode {requested!r} is not one of {MODES}")
    if env.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        return "disabled"
    env_mode = env.get("WANDB_MODE", "").lower()
    if env_mode:
        aliases = {"dryrun": "offline", "run": "online"}
        env_mode = aliases.get(env_mode, env_mode)
        if env_mode not in ("online", "offline", "disabled"):
            raise ValueError(f"WANDB_MODE={env['WANDB_MODE']!r} is not online, offline or disabled")
        requested = env_mode
    if requested == "online" and not credentials:
        warnings.warn("wandb mode 'online' but no credentials (WANDB_API_KEY or ~/.netrc): logging offline",
                      stacklevel=2)
        return "offline"
    if requested != "auto":
        return requested
    return "online" if credentials and probe() else "offline"


def git_commit(repo_dir: Path | None = None) -> str:
    """`<sha>` or `<sha>-dirty` of the checkout holding this package; 'unknown' outside git."""
    cwd = repo_dir or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def package_versions(names=RECORDED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_metadata() -> dict[str, Any]:
    """What identifies the code that produced a run: git commit, package versions, host."""
    return {"git_commit": git_commit(), "packages": package_versions(), "host": platform.node()}


class ResilientWandbLogger(WandbLogger):
    """WandbLogger that falls back to an offline run when creating an online run fails.

    An unreachable or flaky server must never end a training run: the data is then kept locally and can be
    uploaded with ``wandb sync``.
    """

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._wandb_init.get("anonymous", "") is None:  # Lightning passes None; wandb warns it has no effect
            del self._wandb_init["anonymous"]
        try:
            return super().experiment
        except Exception as err:  # wandb raises several error types (CommError, UsageError, timeouts)
            if self._wandb_init.get("mode") == "offline":
                raise
            warnings.warn(f"wandb online init failed ({type(err).__name__}: {err}); continuing offline", stacklevel=2)
            self._experiment = None
            self._wandb_init["mode"] = "offline"
            return super().experiment


def vda_logger(
    project: str = "vda-lightning",
    entity: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    save_dir: str | None = None,
    mode: str = "auto",
    fallback: str = "csv",
    log_model: bool | str = False,
    probe_timeout: float = 2.0,
    init_timeout: float = 60.0,
) -> Logger:
    """Build the run logger from config.

    Args:
        project, entity, group, tags, name: the wandb run's place and labels (name is also the CSV version).
        save_dir: root for logs; default ``$WANDB_DIR`` or ``./runs``. wandb writes ``<save_dir>/wandb/``.
        mode: 'auto' (online with credentials and network, else offline), 'online', 'offline', 'disabled'.
            WANDB_MODE / WANDB_DISABLED in the environment override it.
        fallback: logger used when wandb is disabled or not installed: 'csv' or 'tensorboard'.
        log_model: opt-in checkpoint artifacts: False, True (at the end) or 'all' (every checkpoint).
        probe_timeout: seconds for the one reachability probe in 'auto' mode.
        init_timeout: seconds wandb may take to start an online run before we fall back to offline.
    """
    if fallback not in ("csv", "tensorboard"):
        raise ValueError(f"fallback {fallback!r} must be 'csv' or 'tensorboard'")
    env = os.environ
    save_dir = save_dir or env.get("WANDB_DIR") or "runs"
    meta = run_metadata() if rank_zero_only.rank == 0 else {}
    try:
        import wandb  # noqa: F401
        wandb_available = True
    except ImportError:
        wandb_available = False
    if rank_zero_only.rank == 0 and wandb_available:
        credentials = has_wandb_credentials(env)
        resolved = resolve_wandb_mode(mode, env, credentials=credentials,
                                      probe=lambda: host_reachable(wandb_host(env), timeout=probe_timeout))
    elif wandb_available:
        # Other ranks create no run; they only need the same logger class as rank 0 (same env -> same answer).
        resolved = "disabled" if _env_disables(env, mode) else "offline"
    else:
        resolved = "disabled"

    if resolved == "disabled":
        fallback_cls = CSVLogger if fallback == "csv" else TensorBoardLogger
        logger = fallback_cls(save_dir, name=project, version=name)
        if meta:
            logger.log_hyperparams({"vda_meta": meta})
        return logger

    import wandb

    os.makedirs(save_dir, exist_ok=True)
    return ResilientWandbLogger(
        project=project, entity=entity, group=group, tags=list(tags or []), name=name, save_dir=save_dir,
        mode=resolved, log_model=log_model, config={"vda_meta": meta},
        settings=wandb.Settings(init_timeout=init_timeout, quiet=True),
    )


def _env_disables(env: Mapping[str, str], mode: str) -> bool:
    return (env.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes")
            or env.get("WANDB_MODE", mode).lower() == "disabled")
