"""Lazy package exports (PEP 562): `from vda_lightning.models import build_video_model` still works, but importing
a package no longer imports torch, lightning or OpenCV until a name that needs them is used.

That is what keeps `vda <command> --help` under a second: building a command's parser walks through the package
`__init__` files, and each of them only records where its public names live.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for `package`, resolving each public name from its submodule on first use.

    `names` maps a public name to the submodule (relative, without the dot) that defines it.
    """

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        setattr(importlib.import_module(package), name, value)  # resolved once; later look-ups are plain
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__
