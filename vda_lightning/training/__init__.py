"""Training: the LightningModule, the teacher, EMA, callbacks and the vda fit / vda pseudolabel commands."""
from ..lazy import lazy_exports

_EXPORTS = {"VideoDepthModule": "module", "Teacher": "teacher", "warmup_cosine": "module"}
__all__ = list(_EXPORTS)
# Names resolve on first use (vda_lightning/lazy.py): `vda pseudolabel --help` does not import lightning.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
