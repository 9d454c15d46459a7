"""`python -m vda_lightning.bench ...` = `vda bench ...` (what scripts/gpu_check.sh calls: no installed script
needed)."""
import sys

from . import main

sys.exit(main())
