"""Depth range, median and valid fraction per sequence: what every converter reports, and the unit check.

A wrong unit is the mistake that goes unnoticed longest in this field (millimetre PNGs read as metres give 10 km
targets; a sky value of 655.35 m kept as depth poisons a whole dataset). So:
  * every shard index carries, per sequence, a mergeable `DepthStats` of what was written (`ShardWriter`);
  * converters check a few frames of every sequence BEFORE writing and refuse metric depth whose median lies
    outside the plausible range (`PLAUSIBLE_METRIC_DEPTH` for user layouts; each training-dataset converter
    states its dataset's own range beside its conventions, `Converter.plausible_depth`), and any depth whose
    sampled frames hold no valid pixel at all, with one line naming the depth file, the sampled frames, the
    range found and the flag to change;
  * `vda-shard inspect` prints the same statistics per dataset.
Medians of written data come from a log-spaced histogram (1/32 decade, i.e. within 3.7 %); the pre-write check
uses the exact median of its sampled frames.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

PLAUSIBLE_METRIC_DEPTH = (0.05, 1000.0)   # metres: 5 cm ... 1 km
_LOG_LO, _PER_DECADE, _NBINS = -6.0, 32, 13 * 32   # bins cover 1e-6 ... 1e7


def valid_values(depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The finite, positive values (where the mask, if any, is true): what counts as a valid target."""
    d = np.asarray(depth)
    ok = np.isfinite(d) & (d > 0)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    return d[ok]


class DepthStats:
    """Pixel count, valid count, exact min/max and a log histogram of valid values; merge() adds two."""

    def __init__(self, kind: str = "metric_depth", units: str = "m"):
        self.kind, self.units = kind, units
        self.pixels = self.valid = 0
        self.lo, self.hi = float("inf"), float("-inf")
        self.hist: Counter = Counter()

    def add(self, depth: np.ndarray, mask: np.ndarray | None = None) -> DepthStats:
        v = valid_values(depth, mask).astype(np.float64)
        self.pixels += int(np.asarray(depth).size)
        self.valid += int(v.size)
        if v.size:
            self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))
            step = max(1, v.size // 65536)          # the histogram (medians only) from <= ~64k values, weighted
            bins = np.clip(np.floor((np.log10(v[::step]) - _LOG_LO) * _PER_DECADE), 0, _NBINS - 1).astype(np.int64)
            counts = np.bincount(bins, minlength=_NBINS) * (v.size / bins.size)
            self.hist.update({int(b): int(round(counts[b])) for b in np.flatnonzero(counts)})
        return self

    def merge(self, other: DepthStats) -> DepthStats:
        self.pixels += other.pixels
        self.valid += other.valid
        self.lo, self.hi = min(self.lo, other.lo), max(self.hi, other.hi)
        self.hist.update(other.hist)
        return self

    @property
    def valid_fraction(self) -> float:
        return self.valid / self.pixels if self.pixels else 0.0

    def quantile(self, q: float) -> float:
        """From the histogram: the centre of the bin holding the q-th valid value, clipped to [min, max]."""
        if not self.valid:
            return float("nan")
        target, seen = q * self.valid, 0
        for b in sorted(self.hist):
            seen += self.hist[b]
            if seen >= target:
                return float(np.clip(10 ** (_LOG_LO + (b + 0.5) / _PER_DECADE), self.lo, self.hi))
        return self.hi

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "units": self.units, "pixels": self.pixels, "valid": self.valid,
                "min": self.lo if self.valid else None, "max": self.hi if self.valid else None,
                "hist": {str(b): n for b, n in sorted(self.hist.items())}}

    @classmethod
    def from_dict(cls, d: dict) -> DepthStats:
        """From `as_dict()` output, as checked by `shards.index_schema()` (a shard index is read through it)."""
        s = cls(d.get("kind", "metric_depth"), d.get("units", "m"))
        s.pixels, s.valid = int(d["pixels"]), int(d["valid"])
        if s.valid and d.get("min") is not None and d.get("max") is not None:
            s.lo, s.hi = float(d["min"]), float(d["max"])
        else:
            s.valid = 0
        s.hist = Counter({int(b): int(n) for b, n in d.get("hist", {}).items() if 0 <= int(b) < _NBINS})
        return s

    def summary(self) -> dict:
        return {"kind": self.kind, "units": self.units, "min": self.lo if self.valid else None,
                "median": self.median if self.valid else None, "max": self.hi if self.valid else None,
                "valid_fraction": round(self.valid_fraction, 6)}

    def describe(self, name: str) -> str:
        if not self.valid:
            return f"{name}: {self.kind}, no valid pixel ({self.pixels} pixels)"
        u = f" {self.units}" if self.units and self.units != "unitless" else ""
        return (f"{name}: {self.kind} {self.lo:.3g}-{self.hi:.3g}{u} (median ~{self.median:.3g}{u}), "
                f"{100 * self.valid_fraction:.1f}% valid")


def implausible_metric_depth(values: np.ndarray, units: str = "m",
                             plausible: tuple[float, float] = PLAUSIBLE_METRIC_DEPTH,
                             of: str = "metric depth") -> str | None:
    """None if the median of these valid metric depths lies in the plausible range, else why not (no name);
    `of` says whose range it is ("metric depth", "vkitti2")."""
    if units != "m" or values.size == 0:
        return None
    med, lo, hi = float(np.median(values)), float(values.min()), float(values.max())
    if plausible[0] <= med <= plausible[1]:
        return None
    return (f"median depth {med:.3g} m (range {lo:.3g}-{hi:.3g} m) is outside the plausible "
            f"{plausible[0]:g}-{plausible[1]:g} m for {of}")
