"""The model card (`README.md`) of a hub export: YAML metadata the Hub reads (license, tags, datasets, the metrics
as a `model-index`) and how to load the model.

Metrics come from the run the checkpoint belongs to, when found beside it or in its run folder (the checkpoint's
folder and the one above: `runs/x/checkpoints/last.ckpt` -> `runs/x`): the final validation table `vda fit`
writes (`final_validation.json`, training/results.py: its "after" column) and `vda eval` results (`results.json`,
evaluation/report.py: AbsRel and delta1 per benchmark, TAE). Both are read through the trust boundary and checked
against the parts the card uses; a file that does not fit is left out with a note on stderr.

License: the published weights' own for their sizes (Video Depth Anything's README: Small Apache-2.0, Base and
Large CC-BY-NC-4.0), Apache-2.0 for the test-sized `vitt` (no published weights), else "other"; `--license` says.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from ..trust import ReadError, display, read_json, validate

LICENSES = {"vits": "apache-2.0", "vitb": "cc-by-nc-4.0", "vitl": "cc-by-nc-4.0", "vitg": "cc-by-nc-4.0",
            "vitt": "apache-2.0"}
Score = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=128)]


class FinalValidation(TypedDict, total=False):
    """What the card reads of `final_validation.json` (training/results.py `write_results`)."""

    step: int
    after: dict[Name, dict[Name, Score]]


class _Depth(TypedDict):
    abs_relative_difference: Score
    delta1_acc: Score


class _TAE(TypedDict):
    mean: Score


class EvalResults(TypedDict, total=False):
    """What the card reads of a `vda eval` results file (evaluation/report.py)."""

    depth: dict[Name, _Depth]
    tae: dict[Name, _TAE]


def _run_files(source, name: str) -> list[Path]:
    if source is None or not isinstance(source, str | os.PathLike) or not Path(source).is_file():
        return []
    folders = dict.fromkeys([Path(source).resolve().parent, Path(source).resolve().parent.parent])
    return [f / name for f in folders if (f / name).is_file()]


def _read(path: Path, schema) -> dict | None:
    try:
        return validate(schema, read_json(path, path.name), display(path), strict=False)
    except ReadError as e:
        print(f"vda-export: model card: {e} (left out)", file=sys.stderr)
        return None


def run_metrics(source) -> list[tuple[str, str, str, float]]:
    """(dataset, metric, where it comes from, value) of the run `source` belongs to (module docstring)."""
    rows: list[tuple[str, str, str, float]] = []
    for path in _run_files(source, "final_validation.json")[:1]:
        doc = _read(path, FinalValidation) or {}
        for dataset, metrics in sorted(doc.get("after", {}).items()):
            rows += [(dataset, m, "vda fit final validation", float(v)) for m, v in metrics.items()
                     if m != "sequences" and not m.startswith("skipped")]
    for path in _run_files(source, "results.json")[:1]:
        doc = _read(path, EvalResults) or {}
        for bench, scores in sorted(doc.get("depth", {}).items()):
            rows += [(bench, "abs_rel", "vda eval", scores["abs_relative_difference"]),
                     (bench, "delta1", "vda eval", scores["delta1_acc"])]
        rows += [(bench, "tae", "vda eval", s["mean"]) for bench, s in sorted(doc.get("tae", {}).items())]
    return rows


def _front_matter(config: dict, name: str, rows, license: str | None, datasets: list[str] | None) -> str:
    import yaml

    kind = config["kind"]
    meta = {
        "license": license or LICENSES.get(config["encoder"], "other"),
        "library_name": "vda-lightning",
        "pipeline_tag": "depth-estimation",
        "tags": ["depth-estimation", "video-depth", "video-depth-anything", "vda-lightning",
                 "metric-depth" if kind == "metric" else "relative-depth", config["encoder"]],
        "datasets": datasets if datasets is not None else sorted({r[0] for r in rows}),
    }
    if rows:
        results = []
        for dataset in dict.fromkeys(r[0] for r in rows):
            metrics = [{"type": m, "name": f"{m} ({src})", "value": round(v, 6)} for d, m, src, v in rows
                       if d == dataset]
            results.append({"task": {"type": "depth-estimation", "name": f"{kind} video depth"},
                            "dataset": {"name": dataset, "type": dataset}, "metrics": metrics})
        meta["model-index"] = [{"name": name, "results": results}]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def model_card(config: dict, name: str, source=None, license: str | None = None,
               datasets: list[str] | None = None) -> str:
    """README.md text for the export whose `config.json` is `config`; `name` is the repository (ORG/NAME) or
    the folder's name."""
    rows = run_metrics(source)
    contract = config["input_contract"]
    table = "\n".join(f"| {d} | {m} | {v:.4f} | {src} |" for d, m, src, v in rows)
    metrics = (f"| dataset | metric | value | from |\n|---|---|---|---|\n{table}\n" if rows else
               "No validation or `vda eval` results were found beside the checkpoint.\n")
    ref = name if "/" in name else f"ORG/{name}"
    return _front_matter(config, name, rows, license, datasets) + f"""
# {name}

A {config['kind']} video depth model ({config['architecture']}, encoder `{config['encoder']}`) exported by
vda-lightning {config['framework_version']} with `vda export --format hub`. The weights (`model.safetensors`) are
in the published Video Depth Anything key layout (`pretrained.*` + `head.*`); `config.json` says what the model is.

Input: RGB in [0, 1], ImageNet mean/std, sides multiples of {contract.get('patch_size', 14)} pixels, short side
{contract.get('input_size', 518)} by default.

## Results

{metrics}
## How to load

```python
import vda_lightning
model = vda_lightning.load_model("hf://{ref}")   # or a local copy of this folder
```

```bash
vda infer clip.mp4 --checkpoint hf://{ref}
HF_HUB_OFFLINE=1 vda infer clip.mp4 --checkpoint hf://{ref}   # from the cache, no network
```
"""
