"""crossmatch_lite: a small, switchable re-implementation of CrossMatch (Zhao, Wang, Ding,
IEEE JBHI 2024, arXiv:2405.00354) for teaching and honest ablations."""
import os

# OpenMP threads that spin while waiting take cores another process needs: with one of two
# cores busy elsewhere, a training step ran 3-5x slower with the default (active) waiting
# than with passive waiting (docs/speed.md). Read when torch loads OpenMP, so it is set
# before anything of the package imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import Config, ConfigError, load_config  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "load_config", "__version__"]
