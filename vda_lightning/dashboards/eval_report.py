"""Evaluation reports in wandb: the results table, per-sequence metrics, example pictures, the Markdown table.

`log_eval_results(results, ...)` takes the dict `vda-eval` returns (see `vda_lightning.evaluation.runner`):
{"depth": {bench: {"abs_relative_difference", "rmse_linear", "delta1_acc", "per_scene", "scenes", "frames",
"missing_predictions", "sequences", ...}}, "tae": {name: {"mean", "per_scene", "scenes", ...}}, "meta": {...}}.
It logs to a given run (e.g. the training run) or opens an evaluation run of its own (`job_type="eval"`) with
the same offline/disabled rules as training (`resolve_wandb_mode`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vda_lightning.dashboards.loggers import (
    has_wandb_credentials,
    host_reachable,
    resolve_wandb_mode,
    run_metadata,
    wandb_host,
)

SUMMARY_COLUMNS = ["benchmark", "abs_rel", "rmse", "delta1", "tae", "sequences"]
SEQUENCE_COLUMNS = ["benchmark", "sequence", "abs_rel", "rmse", "delta1", "tae", "frames", "missing_predictions"]


def summary_rows(results: dict) -> list[list[Any]]:
    """One row per benchmark (depth benchmarks, then TAE ones); None where a metric does not apply."""
    rows = [[name, r["abs_relative_difference"], r["rmse_linear"], r["delta1_acc"], None, r["sequences"]]
            for name, r in results.get("depth", {}).items()]
    rows += [[f"tae_{name}", None, None, None, r["mean"], r["sequences"]] for name, r in results.get("tae", {}).items()]
    return rows


def sequence_rows(results: dict) -> list[list[Any]]:
    rows = []
    for name, r in results.get("depth", {}).items():
        missing = r.get("missing_predictions") or {}
        for scene, (abs_rel, rmse, delta1), frames in zip(r["scenes"], r["per_scene"], r["frames"]):
            rows.append([name, scene, abs_rel, rmse, delta1, None, frames, len(missing.get(scene, []))])
    for name, r in results.get("tae", {}).items():
        missing = r.get("missing_predictions") or {}
        for scene, value in zip(r["scenes"], r["per_scene"]):
            rows.append([f"tae_{name}", scene, None, None, None, value, None, len(missing.get(scene, []))])
    return rows


def summary_scalars(results: dict, prefix: str = "eval") -> dict[str, float]:
    """Flat scalars for the run summary / charts: eval/<bench>/abs_rel|rmse|delta1, eval/tae_<name>/tae."""
    out = {}
    for name, r in results.get("depth", {}).items():
        out[f"{prefix}/{name}/abs_rel"] = r["abs_relative_difference"]
        out[f"{prefix}/{name}/rmse"] = r["rmse_linear"]
        out[f"{prefix}/{name}/delta1"] = r["delta1_acc"]
    for name, r in results.get("tae", {}).items():
        out[f"{prefix}/tae_{name}/tae"] = r["mean"]
    return out


def _open_run(label, project, entity, group, tags, mode, save_dir, results):
    import wandb

    env = os.environ
    resolved = resolve_wandb_mode(mode, env, credentials=has_wandb_credentials(env),
                                  probe=lambda: host_reachable(wandb_host(env)))
    if resolved == "disabled":
        return None
    save_dir = save_dir or env.get("WANDB_DIR") or "runs"
    os.makedirs(save_dir, exist_ok=True)
    config = {"vda_meta": run_metadata(), "eval": results.get("meta", {}),
              "settings": {k: r.get("settings") for k, r in results.get("depth", {}).items()}}
    return wandb.init(project=project, entity=entity, group=group, tags=list(tags or []), name=label,
                      job_type="eval", dir=save_dir, mode=resolved, config=config,
                      settings=wandb.Settings(init_timeout=60, quiet=True))


def log_eval_results(results: dict, label: str | None = None, run: Any = None, project: str = "vda-lightning",
                     entity: str | None = None, group: str | None = None, tags: list[str] | None = None,
                     mode: str = "auto", save_dir: str | None = None,
                     examples: dict[str, np.ndarray] | None = None, markdown: str | None = None,
                     prefix: str = "eval") -> Path | None:
    """Log a vda-eval results dict to wandb; returns the run folder, or None when wandb is disabled.

    Args:
        results: the dict returned by `vda_lightning.evaluation.runner.evaluate` (+ "meta").
        label: run name / table row name (default results["meta"]["label"]).
        run: an open wandb Run or a Lightning WandbLogger to log into (e.g. the training run); None opens an
            evaluation run of its own (finished before returning).
        project, entity, group, tags, mode, save_dir: as for `vda_logger` when a run is opened here.
        examples: {name: uint8 RGB image}, e.g. `media.clip_pictures(...)["compare"]` of a few sequences.
        markdown: the Markdown table vda-eval wrote (default: built with evaluation.report.markdown_table).
    """
    import wandb

    label = label or results.get("meta", {}).get("label") or "eval"
    own = run is None
    if own:
        run = _open_run(label, project, entity, group, tags, mode, save_dir, results)
        if run is None:
            return None
    elif hasattr(run, "experiment"):  # a Lightning WandbLogger
        run = run.experiment
    if markdown is None:
        from vda_lightning.evaluation.report import markdown_table

        markdown = markdown_table({label: results})
    payload: dict[str, Any] = {
        f"{prefix}/results": wandb.Table(columns=SUMMARY_COLUMNS, data=summary_rows(results)),
        f"{prefix}/per_sequence": wandb.Table(columns=SEQUENCE_COLUMNS, data=sequence_rows(results)),
        f"{prefix}/markdown": wandb.Html(f"<pre>{_escape(markdown)}</pre>"),
    }
    for name, image in (examples or {}).items():
        payload[f"{prefix}/examples/{name}"] = wandb.Image(image, caption=f"{label}: {name}")
    run.log(payload)
    scalars = summary_scalars(results, prefix)
    for key, value in scalars.items():
        run.summary[key] = value
    run_dir = Path(run.dir).parent if getattr(run, "dir", None) else None
    if own:
        run.finish()
    return run_dir


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
