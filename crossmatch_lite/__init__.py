"""crossmatch_lite: a small, switchable re-implementation of CrossMatch (Zhao, Wang, Ding,
IEEE JBHI 2024, arXiv:2405.00354) for teaching and honest ablations.

Importing the package changes one thing of the importing process: it sets the environment
variable GOMP_SPINCOUNT=10000, unless the process already has one. OpenMP (libgomp, as
torch's CPU wheels use) keeps idle threads spinning for 300,000 turns before they sleep;
when another process holds a core, the spinning threads take its time from the working
ones. A bounded spin keeps the idle speed and gives the core back: with one of two cores
busy a step took 5.4 s instead of 2.0 s by default, idle 0.57 s either way (docs/speed.md).
libgomp reads the variable once, when torch loads it, so it cannot wait for the thread
set-up of a run (run/runtime.py); it is set here, before anything of the package imports
torch. It has no effect when torch was imported first. To keep libgomp's default, set
GOMP_SPINCOUNT=300000 yourself before importing the package.
"""
import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # why: the module docstring

from .config import Config, ConfigError, load_config  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "load_config", "__version__"]
