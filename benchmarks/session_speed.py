"""The GPU session's speed step: `benchmarks/bench_step.py`, run twice, folded into one table.

1. eager: ours in fp32 and in bf16 (both channels-last, the CUDA default), interleaved
   with the official loop (fp32, NCHW) on the same data and initial weights;
2. compiled: ours in bf16 + torch.compile on its own, with extra warm-up iterations,
   because compilation takes long and can fail: a failure or a timeout there must not
   take the eager table with it.

Each is a subprocess with its own time limit writing its own JSON (to a scratch folder);
this module reads them back, and the session JSON keeps them whole.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .session_env import run_child

ROOT = Path(__file__).resolve().parents[1]

LABELS = {"official": "official loop (fp32)", "ours": "ours fp32", "ours[bf16]": "ours bf16",
          "ours_compiled": "ours bf16 + torch.compile"}


def bench_command(out: Path, device: str, batch: int, size: int, repeats: int, data: str, root: str,
                  threads: int, sets: list[str], compiled: bool, warmup: int, extra: list[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.bench_step", "--device", device, "--batch", str(batch),
           "--size", str(size), "--repeats", str(repeats), "--data", data, "--root", str(root),
           "--threads", str(threads), "--warmup", str(warmup), "--out", str(out), *extra]
    for s in sets:
        cmd += ["--set", s]
    if compiled:
        cmd += ["--only-ours", "--compile", "--set", "train.amp=bf16"]
    else:
        # "ours" is fp32 (amp off); the bf16 variant is timed next to it and the official loop.
        cmd += ["--set", "train.amp=off", "--variant", "bf16=train.amp=bf16"]
    return cmd


def run_bench(cmd: list[str], out: Path, timeout: float, log: Path | None) -> dict:
    t0 = time.monotonic()
    rc, output = run_child(cmd, timeout)
    status = "timeout" if rc is None else ("ok" if rc == 0 else "error")
    res = {"status": status, "command": " ".join(cmd[1:]), "seconds": round(time.monotonic() - t0, 1),
           "timeout_s": round(timeout, 1), "output_tail": output.splitlines()[-12:]}
    if log is not None:
        from crossmatch_lite.run.files import atomic_write_text
        atomic_write_text(log, output)
    if status == "ok" and out.exists():
        res["file"] = out.name
        res["result"] = json.loads(out.read_text())
    elif status == "ok":
        res["status"] = "error"
    return res


def table(eager: dict | None, compiled: dict | None, card: str) -> list[dict]:
    """One row per loop; speed-up = official s/it / this loop's s/it."""
    loops = dict((eager or {}).get("loops", {}))
    if compiled and compiled.get("loops", {}).get("ours"):
        c = dict(compiled["loops"]["ours"])
        # FLOPs are those of the eager bf16 step; the compiled run skips counting them.
        flops = loops.get("ours[bf16]", {}).get("gflop_per_it")
        if flops and c.get("gflop_per_it") is None:
            c["gflop_per_it"] = flops
            c["achieved_gflop_s"] = round(flops / c["s_per_it_median"], 2)
        loops["ours_compiled"] = c
    official = loops.get("official", {}).get("s_per_it_median")
    rows = []
    for key in ("official", "ours", "ours[bf16]", "ours_compiled"):
        s = loops.get(key)
        if not s:
            continue
        rows.append({
            "card": card, "loop": LABELS[key],
            "s_per_it": s["s_per_it_median"], "images_per_s": s["images_per_s"],
            "peak_mem_mib": s["peak_mem_mib"], "peak_mem_kind": s.get("peak_mem_kind"),
            "gpu_idle_share": s.get("gpu_idle_share"), "data_prep_share": s.get("data_prep_share"),
            "gflop_per_it": s.get("gflop_per_it"), "achieved_gflop_s": s.get("achieved_gflop_s"),
            "speedup_vs_official": round(official / s["s_per_it_median"], 2) if official else None,
        })
    return rows


def markdown(rows: list[dict]) -> str:
    fmt = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
    lines = ["| card | loop | s/it | images/s | peak memory (MiB) | GPU idle share | data-prep share | vs official |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['card']} | {r['loop']} | {fmt(r['s_per_it'], '.4f')} | {fmt(r['images_per_s'], '.1f')} | "
                     f"{fmt(r['peak_mem_mib'], '.0f')} | {fmt(r['gpu_idle_share'], '.3f')} | "
                     f"{fmt(r['data_prep_share'], '.3f')} | {fmt(r['speedup_vs_official'], '.2f')}x |")
    return "\n".join(lines)
