"""The project's one switch for CI-sized work.

With CROSSMATCH_LITE_SMOKE=1 in the environment, notebooks and ablation grids shrink
their defaults (fewer iterations, fewer cases) so the whole series runs in CI minutes.
Results under smoke mode show that things run, not how well the method works.
"""
from __future__ import annotations

import os

SMOKE_ENV = "CROSSMATCH_LITE_SMOKE"


def smoke_mode() -> bool:
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def scaled(normal, smoke):
    """`normal` usually, `smoke` under CROSSMATCH_LITE_SMOKE=1."""
    return smoke if smoke_mode() else normal
