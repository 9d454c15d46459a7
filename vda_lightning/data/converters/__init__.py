"""One `vda-shard <dataset> ROOT` converter per training dataset, each reading the dataset as distributed.

`CONVERTERS` maps the subcommand name to its `Converter` (layout text, arguments, sequence reader); `data/cli.py`
adds one subparser per entry. Conventions per dataset: each module's docstring and data/README.md.
"""
from __future__ import annotations

from . import dynamic_replica, hypersim, irs, pointodyssey, spring, tartanair, vkitti2
from .base import Converter

CONVERTERS: dict[str, Converter] = {m.CONVERTER.name: m.CONVERTER for m in (
    vkitti2, tartanair, pointodyssey, irs, spring, dynamic_replica, hypersim)}

__all__ = ["CONVERTERS", "Converter"]
