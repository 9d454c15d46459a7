"""Training: the tasks (relative, metric) on one base, the teacher, EMA, callbacks and vda fit / vda pseudolabel."""
from ..lazy import lazy_exports

_EXPORTS = {"DepthTask": "tasks", "RelativeDepthTask": "tasks", "MetricDepthTask": "tasks", "warmup_cosine": "tasks",
            "VideoDepthModule": "module", "Teacher": "teacher"}
__all__ = list(_EXPORTS)
# Names resolve on first use (vda_lightning/lazy.py): `vda pseudolabel --help` does not import lightning.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
