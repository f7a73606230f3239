"""Timing helpers shared by the benchmarks that run the unmodified official scripts
(official_la_speed.py, official_acdc_speed.py): CPU seconds including loader workers, and
one summary of a window of timed iterations."""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def cpu_seconds() -> dict:
    """CPU seconds (user + system) of this process and of its children, reaped or alive."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    alive = 0.0
    try:
        import psutil
        for c in psutil.Process().children(recursive=True):
            try:
                t = c.cpu_times()
                alive += t.user + t.system
            except psutil.Error:  # exited meanwhile
                pass
    except ImportError:
        pass
    return {"main": own.ru_utime + own.ru_stime, "children": reaped.ru_utime + reaped.ru_stime + alive}


def window(times: list[float], cpu0: dict, cpu1: dict, load0, load1) -> dict:
    """Median / IQR / mean wall seconds per iteration and CPU seconds per iteration (main
    process and children apart) of `times`, with the load average before and after."""
    n = len(times)
    q = statistics.quantiles(times, n=4) if n > 1 else [times[0]] * 3
    main = cpu1["main"] - cpu0["main"]
    children = cpu1["children"] - cpu0["children"]
    return {"iterations": n, "wall_s": times, "median_s": q[1], "iqr_s": [q[0], q[2]],
            "mean_s": sum(times) / n, "cpu_s_per_it": (main + children) / n,
            "cpu_main_s_per_it": main / n, "cpu_children_s_per_it": children / n,
            "loadavg_before": list(load0), "loadavg_after": list(load1)}


def run_side_process(module: str, argv: list[str], root: Path, label: str) -> dict:
    """`python -m module *argv --part-out FILE` in a fresh interpreter with `root` first on
    PYTHONPATH (no state shared with the other side); the JSON it wrote to FILE."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
        print(f"[{label}] load {os.getloadavg()}", flush=True)
        subprocess.run([sys.executable, "-m", module, *argv, "--part-out", f.name], check=True, cwd=root, env=env,
                       stdout=subprocess.DEVNULL)
        return json.loads(Path(f.name).read_text())
