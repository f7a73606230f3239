"""The GPU session's test step: run test files in a pytest subprocess on the session's device.

A subprocess, so that a test that hangs or crashes the CUDA context costs its own time
limit and nothing else. Test files choose their device from CROSSMATCH_LITE_TEST_DEVICE.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from .session_env import run_child

ROOT = Path(__file__).resolve().parents[1]
DEVICE_ENV = "CROSSMATCH_LITE_TEST_DEVICE"

_SELECTED = re.compile(r"(\d+)/\d+ tests? collected")
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?|tests? collected)")


def parse_counts(text: str) -> dict:
    """Counts from pytest's closing summary line(s), e.g. '3 passed, 1 skipped in 2.1s'."""
    counts: dict[str, int] = {}
    for line in text.splitlines()[-15:]:
        m = _SELECTED.search(line)  # collect-only with -k: "3/15 tests collected (12 deselected)"
        if m:
            counts["collected"] = int(m.group(1))
            line = line[m.end():]
        for n, what in _COUNT.findall(line):
            key = {"error": "errors", "warning": "warnings", "test collected": "collected",
                   "tests collected": "collected"}.get(what, what)
            counts[key] = int(n)
    return counts


def run_pytest(test_file: str, device: str, timeout: float, *, select: str | None = None,
               collect_only: bool = False, log_dir: Path | None = None, extra_env: dict | None = None) -> dict:
    """Run one test file; returns status (passed/failed/absent/timeout/error), counts and timing."""
    path = ROOT / test_file
    result = {"file": test_file, "device": device, "select": select, "collect_only": collect_only}
    if not path.exists():
        # The file may land later (another issue writes it): say so and go on.
        return {**result, "status": "absent"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    if select:
        cmd += ["-k", select]
    if collect_only:
        cmd.append("--collect-only")
    result["command"] = " ".join(cmd[1:])
    t0 = time.monotonic()
    rc, output = run_child(cmd, timeout, **{DEVICE_ENV: device, **(extra_env or {})})
    status = "timeout" if rc is None else None
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["returncode"] = rc
    result["counts"] = parse_counts(output)
    if status is None:
        # pytest exit codes: 0 all passed, 1 some failed, 5 nothing collected, else usage/internal.
        status = {0: "passed", 1: "failed", 5: "nothing collected"}.get(rc, "error")
    result["status"] = status
    result["output_tail"] = output.splitlines()[-25:]
    if log_dir is not None:
        from crossmatch_lite.run.files import atomic_write_text
        atomic_write_text(log_dir / f"pytest_{Path(test_file).stem}.log", output)
    return result
