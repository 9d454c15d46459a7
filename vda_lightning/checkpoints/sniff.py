"""What a would-be checkpoint file actually is, from its bytes (not its name): so that an error can say "a JSON
file", "a Git LFS pointer", "a truncated zip" or "a safetensors file whose header is damaged" instead of a
deserialiser's message.

`sniff(path)` -> `Sniff(kind, detail)`; kinds that can hold weights: "safetensors", "torch-zip" (what `torch.save`
writes since PyTorch 1.6), "torch-legacy" (an older pickle stream). Everything else is explained in `detail`.
"""
from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..trust import ReadError, parse_json

LOADABLE = ("safetensors", "torch-zip", "torch-legacy")
_HEAD = 4096


@dataclass(frozen=True)
class Sniff:
    kind: str    # safetensors | torch-zip | torch-legacy | *-damaged | empty | json | text | html | git-lfs | unknown
    detail: str  # one phrase: what the file is and, when it is not loadable, why

    @property
    def loadable(self) -> bool:
        return self.kind in LOADABLE

    def refusal(self, path) -> str:
        """The one-line error for a file that holds no loadable weights."""
        if self.kind.endswith("-damaged"):
            return f"{path}: damaged checkpoint: {self.detail}"
        return f"{path}: not a checkpoint but {self.detail}"


def _first_line(text: str, limit: int = 80) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[:limit] + "…"


def _safetensors(path: Path, head: bytes, size: int) -> Sniff | None:
    """A safetensors file starts with a little-endian u64 header length and a JSON header beginning with `{`."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if n > 100 * 2**20:  # the format caps headers at 100 MB: these bytes are not such a length
        return None
    if 8 + n > size:
        return Sniff("safetensors-damaged", f"a truncated safetensors file: its header says {n} bytes of JSON, "
                                            f"the file has only {size - 8} after the length field")
    with open(path, "rb") as f:
        f.seek(8)
        raw = f.read(n)
    try:  # trust.parse_json: UTF-8, standard JSON, bounded nesting (a ReadError is a ValueError)
        header = parse_json(raw, "header", max_bytes=n)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        if not all(isinstance(e, int) and not isinstance(e, bool) for e in ends):
            raise ValueError("data_offsets hold a value that is not an integer")
    except (ValueError, KeyError, TypeError, IndexError) as e:
        return Sniff("safetensors-damaged", f"a safetensors file whose header is damaged ({type(e).__name__}: "
                                            f"{' '.join(str(e).split())[:120]})")
    need, have = max(ends, default=0), size - 8 - n
    if need > have:
        return Sniff("safetensors-damaged", f"a truncated safetensors file: its {len(ends)} tensors need {need} "
                                            f"bytes after the header, the file has {have}")
    return Sniff("safetensors", f"a safetensors file ({len(ends)} tensors)")


def _zip(path: Path, size: int) -> Sniff:
    if not zipfile.is_zipfile(path):
        return Sniff("zip-damaged", f"a truncated or damaged zip archive ({size} bytes, no end-of-archive record; "
                                    "PyTorch checkpoints are zip archives — an interrupted download or copy?)")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        return Sniff("zip-damaged", f"a damaged zip archive ({e})")
    if any(n.endswith("data.pkl") for n in names):
        return Sniff("torch-zip", f"a PyTorch checkpoint (zip, {len(names)} members)")
    shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
    return Sniff("zip", f"a zip archive that is not a PyTorch checkpoint (holds {shown or 'nothing'})")


def _text(head: bytes) -> Sniff | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # a multi-byte character cut by the read is fine; anything else is binary
            return None
        text = head[:e.start].decode("utf-8")
    if any(c in text for c in "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13"):
        return None
    stripped = text.lstrip()
    low = stripped[:200].lower()
    if stripped.startswith("version https://git-lfs"):
        return Sniff("git-lfs", "a Git LFS pointer (run `git lfs pull`, or download the file itself)")
    if low.startswith(("<!doctype html", "<html")) or "<html" in low:
        return Sniff("html", "an HTML page (a download that saved the web page instead of the file?)")
    if stripped.startswith(("{", "[")):
        return Sniff("json", "a JSON file")
    return Sniff("text", f"a text file (first line: {_first_line(text)!r})")


def _json_detail(path: Path, size: int) -> str:
    """Say more about a JSON file: our config sidecar, or its top-level keys."""
    if size > 16 * 2**20:
        return "a JSON file"
    try:
        doc = parse_json(Path(path).read_bytes(), "file", max_bytes=16 * 2**20)
    except (OSError, ReadError) as e:
        return f"a text file that looks like JSON ({type(e).__name__})"
    path = Path(path)
    if isinstance(doc, dict) and "encoder" in doc:
        weights = path.with_name(path.name[: -len(".json")]) if path.name.endswith(".json") else None
        beside = f"; the weights are {weights.name!r} beside it" if weights is not None and weights.is_file() else ""
        return f"a model config (JSON){beside}"
    if isinstance(doc, dict):
        keys = ", ".join(list(doc)[:5]) + (", …" if len(doc) > 5 else "")
        return f"a JSON file (keys: {keys})"
    return f"a JSON file (a {type(doc).__name__})"


def sniff(path: str | os.PathLike) -> Sniff:
    """What the file at `path` is (it must exist)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return Sniff("empty", "an empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    found = _safetensors(path, head, size)
    if found is not None:
        return found
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip(path, size)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return Sniff("torch-legacy", "a pickle stream (PyTorch's legacy checkpoint format)")
    if head.startswith(b"\x1f\x8b"):
        return Sniff("gzip", "a gzip archive (unpack it first)")
    if len(head) > 262 and head[257:262] == b"ustar":
        return Sniff("tar", "a tar archive (unpack it first)")
    found = _text(head)
    if found is not None:
        return Sniff("json", _json_detail(path, size)) if found.kind == "json" else found
    return Sniff("unknown", f"data of no format that holds weights (first bytes {head[:8].hex(' ')}; {size} bytes)")
