"""crossmatch_lite: a small, switchable re-implementation of CrossMatch (Zhao, Wang, Ding,
IEEE JBHI 2024, arXiv:2405.00354) for teaching and honest ablations."""
from .config import Config, ConfigError, load_config

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "load_config", "__version__"]
