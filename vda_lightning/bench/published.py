"""The published code, from a checkout the user names (`--published DIR` or $VDA_PUBLISHED_DIR), for the benches
that measure ours against it (`vda bench startup|streaming|speed`). Nothing of it is copied here: the checkout's
own `video_depth_anything` package is imported as it is."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ..cli.errors import CommandError


def checkout_problem(checkout: str | None, module: str = "video_depth") -> str | None:
    """Why `checkout` cannot serve as the published code (one line), or None."""
    if not checkout or not (Path(checkout) / "video_depth_anything" / f"{module}.py").is_file():
        return f"{checkout}: not a checkout of the published code (no video_depth_anything/{module}.py)"
    return None


def published_class(checkout: str, module: str = "video_depth"):
    """`VideoDepthAnything` of the checkout's published `video_depth.py` (or `video_depth_stream.py`)."""
    if checkout not in sys.path:
        sys.path.insert(0, checkout)
    try:
        return importlib.import_module(f"video_depth_anything.{module}").VideoDepthAnything
    except ImportError as e:
        raise CommandError(f"{checkout}: the published code does not import ({e}); install its requirements "
                           "(einops, easydict, ...) or put them on PYTHONPATH") from None
