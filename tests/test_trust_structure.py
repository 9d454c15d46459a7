"""The trust boundary as a structural rule: raw readers of outside bytes live in `vda_lightning/trust/` only.

Issue 24 found that every reader checked its input its own way, so each new feature opened new doors. This test
keeps the doors in one wall: a call that decodes a file or a document from outside the process (OpenCV on a path,
`np.load`, `json.load(s)`, h5py, OpenEXR, `torch.load`, webdataset's `gopen`, `np.fromfile`) may appear outside
`trust/` only where it is listed below with the reason it is safe. A new feature that needs one either goes
through `vda_lightning.trust` or adds a line here that a reviewer reads.
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vda_lightning"

RAW_READERS = {  # the dotted name of the function called -> the reader's name in ALLOWED
    **{f"cv2.{f}": "OpenCV given a path" for f in ("imread", "imwrite", "imreadmulti", "VideoCapture", "VideoWriter")},
    "np.load": "np.load", "numpy.load": "np.load",
    "json.load": "json.load(s)", "json.loads": "json.load(s)",
    "h5py.File": "h5py.File",
    "OpenEXR.File": "OpenEXR.File", "OpenEXR.InputFile": "OpenEXR.File",
    "torch.load": "torch.load",
    "gopen": "gopen", "gopen.gopen": "gopen",
    "np.fromfile": "np.fromfile",
    "pickle.load": "pickle", "pickle.loads": "pickle",
    "yaml.load": "yaml.load", "yaml.unsafe_load": "yaml.load", "yaml.full_load": "yaml.load",
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def calls(path: Path):
    """(dotted name, call node) of every call in a module (strings and comments are not code: ast skips them)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            yield dotted(node.func), node


# (file relative to vda_lightning/, reader) -> why it is safe there. Counted: a second call in the same file
# needs its own look.
ALLOWED: dict[tuple[str, str], tuple[int, str]] = {
    ("checkpoints/read.py", "torch.load"): (1, "weights_only=True: the weights-only unpickler refuses code"),
    ("training/cli.py", "torch.load"): (1, "weights_only=True, mmap: reads global_step of a checkpoint we wrote"),
    ("training/checkpoint_io.py", "torch.load"): (1, "weights_only=True: the resume finder's validity probe"),
    ("data/streams.py", "gopen"): (1, "URLs from the user's config, or a saved position checked against them"),
    ("inference/writers.py", "np.fromfile"): (1, "our own spool file, written by this process"),
    ("bench/infer.py", "np.fromfile"): (2, "spools this benchmark wrote itself"),
    ("bench/startup.py", "torch.load"): (1, "weights_only=True: the published script's load of the bench's .pth"),
    ("bench/infer.py", "json.load(s)"): (2, "the stdout of a worker process this benchmark started"),
    ("bench/gpu.py", "json.load(s)"): (1, "results a step of this benchmark wrote"),
    ("bench/speed.py", "json.load(s)"): (2, "the stdout of a worker process this benchmark started, and its argv"),
    ("bench/speed.py", "np.load"): (2, "depth arrays the benchmark's own workers saved in its temporary folder"),
    ("dashboards/offline_reader.py", "json.load(s)"): (1, "values of wandb's own run file, already parsed"),
    ("inference/writers.py", "OpenEXR.File"): (1, "writing to a Python file object: OpenEXR never sees a name"),
}


def raw_reader_calls() -> Counter:
    found: Counter = Counter()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith("trust/"):
            found.update((rel, RAW_READERS[name]) for name, _ in calls(path) if name in RAW_READERS)
    return found


def test_raw_readers_of_outside_bytes_live_in_the_trust_package():
    found = raw_reader_calls()
    unexpected = {k: n for k, n in found.items() if n > ALLOWED.get(k, (0, ""))[0]}
    assert not unexpected, (
        f"raw readers outside vda_lightning/trust/: {unexpected}; read through vda_lightning.trust (schema, header "
        "caps, confined paths) or justify the call in ALLOWED")


def test_every_allowed_raw_reader_is_still_there():
    found = raw_reader_calls()
    stale = [k for k in ALLOWED if not found.get(k)]
    assert not stale, f"ALLOWED lists calls that no longer exist (remove them): {stale}"


def test_every_torch_load_is_weights_only():
    for path in PACKAGE.rglob("*.py"):
        for name, node in calls(path):
            if name == "torch.load":
                weights_only = {k.arg: k.value for k in node.keywords}.get("weights_only")
                assert isinstance(weights_only, ast.Constant) and weights_only.value is True, (
                    f"{path}:{node.lineno}: torch.load without weights_only=True")
