"""The steps of benchmarks/gpu_session.py before the protocol: machine, tests, data, speed.

Every step that can hang or crash (pytest, the ACDC conversion, each benchmark) runs in a
child process with its own time limit, so that it costs that limit and nothing more.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from crossmatch_lite.run.files import atomic_write_text

from .bench_step import hardware_info, loadavg

__all__ = ["hardware_info", "environment", "card_name", "missing_packages", "run_pytest", "acdc_zip",
           "prepare_acdc", "load_training_data", "bench_command", "run_bench", "speed_table", "markdown"]

ROOT = Path(__file__).resolve().parents[1]
# What the package, the data conversion and the tests import beyond torch: a fresh machine
# may lack some, and every step after the environment report needs them.
NEEDED = ("monai", "nibabel", "h5py", "scipy", "PIL", "yaml", "tqdm", "psutil", "pytest")


# ---------------------------------------------------------------- child processes
def child_env(**extra: str) -> dict:
    """This checkout first on the path (not a copy of the package installed from another)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_child(cmd: list[str], timeout: float, **extra_env: str) -> tuple[int | None, str]:
    """Run a step's subprocess in its own process group; (returncode or None on timeout, output).

    On timeout the whole group is killed: a bare subprocess.run would leave the child's own
    children (data_download's conversion workers, for one) running on."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(**extra_env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out or ""
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


# ---------------------------------------------------------------- env
def _command_output(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def git_commit() -> str | None:
    """HEAD (+dirty), or None for a copy of the tree without .git."""
    head = _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return head and head + ("+dirty" if dirty else "")


def missing_packages() -> dict:
    """{name: why} for each needed package that does not import; {} when all do."""
    missing = {}
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as e:  # an ImportError, or a broken install raising anything else
            missing[name] = f"{type(e).__name__}: {e}"
    return missing


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("monai", "nibabel", "numpy", "scipy", "h5py", "pillow", "triton", "psutil"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def environment(device: torch.device) -> dict:
    """What machine, drivers and libraries the session's numbers come from."""
    try:
        import psutil
        ram = round(psutil.virtual_memory().total / 2 ** 30, 1)
    except ImportError:
        ram = None
    report = {
        "hardware": hardware_info(device), "device": str(device),
        "cuda_available": torch.cuda.is_available(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "python": platform.python_version(),
        "platform": platform.platform(), "ram_gib": ram, "loadavg": loadavg(),
        "git_commit": git_commit(), "executable": sys.executable,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "packages": _versions(), "missing_packages": missing_packages(),
    }
    if device.type == "cuda":
        report["nvidia_smi"] = _command_output(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
             "--format=csv,noheader"])
        report["bf16_supported"] = torch.cuda.is_bf16_supported()
        # torch.compile's CUDA backend needs triton; without it the compiled variant cannot run.
        report["triton"] = report["packages"]["triton"] is not None
        report["gpu_count"] = torch.cuda.device_count()
    return report


def card_name(hardware: dict) -> str:
    """The short hardware label used in tables: the GPU's name, else the CPU's."""
    if hardware.get("gpu"):
        return hardware["gpu"]
    return f"CPU: {hardware.get('cpu', 'unknown')} ({hardware.get('cores')} cores)"


# ---------------------------------------------------------------- tests
DEVICE_ENV = "CROSSMATCH_LITE_TEST_DEVICE"  # the device the CUDA-aware test files run on
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
               collect_only: bool = False, log_dir: Path | None = None) -> dict:
    """Run one test file; returns status (passed/failed/absent/timeout/error), counts and timing."""
    result = {"file": test_file, "device": device, "select": select, "collect_only": collect_only}
    if not (ROOT / test_file).exists():
        return {**result, "status": "absent"}  # a checkout without that file: not a failure
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    cmd += ["-k", select] if select else []
    cmd += ["--collect-only"] if collect_only else []
    result["command"] = " ".join(cmd[1:])
    t0 = time.monotonic()
    rc, output = run_child(cmd, timeout, **{DEVICE_ENV: device})
    result.update(seconds=round(time.monotonic() - t0, 1), returncode=rc, counts=parse_counts(output))
    # pytest exit codes: 0 all passed, 1 some failed, 5 nothing collected, else usage/internal.
    result["status"] = "timeout" if rc is None else {0: "passed", 1: "failed", 5: "nothing collected"}.get(rc, "error")
    result["output_tail"] = output.splitlines()[-25:]
    if log_dir is not None:
        atomic_write_text(log_dir / f"pytest_{Path(test_file).stem}.log", output)
    return result


# ---------------------------------------------------------------- data
ZIP_NAME = "ACDC-training.zip"
ZIP_ENV = "CROSSMATCH_LITE_ACDC_ZIP"


def acdc_zip(explicit: str | None = None) -> Path | None:
    """The zip named by --acdc-zip, else by $CROSSMATCH_LITE_ACDC_ZIP, else None. Nothing
    else is searched: the zip is wherever its user put it."""
    given = explicit or os.environ.get(ZIP_ENV)
    return Path(given).expanduser() if given else None


def is_prepared(root: Path) -> bool:
    return (Path(root) / "data").is_dir() and any((Path(root) / "data").glob("patient*_frame01.h5"))


def _mirror_folder(zip_path: Path) -> Path:
    # data_download's --mirror takes a folder holding the zip under its official name.
    if zip_path.name == ZIP_NAME:
        return zip_path.parent
    folder = Path(tempfile.mkdtemp(prefix="acdc_zip_"))
    (folder / ZIP_NAME).symlink_to(zip_path.resolve())
    return folder


def prepare_acdc(root: Path, zip_path: Path | None, timeout: float, workers: int | None = None) -> dict:
    """Convert the zip into `root` (python -m data_download acdc); a prepared root is reused."""
    root = Path(root)
    result = {"root": str(root)}
    if is_prepared(root):
        return {**result, "status": "ok", "reused": True}
    if zip_path is None:
        raise FileNotFoundError(
            f"no prepared ACDC in {root} and no ACDC training zip ({ZIP_NAME}): pass --acdc-zip PATH, "
            f"set {ZIP_ENV}, or prepare the data first (python -m data_download acdc --dest {root})")
    if not zip_path.is_file():
        raise FileNotFoundError(f"no ACDC training zip at {zip_path}")
    workers = workers or min(8, os.cpu_count() or 1)
    cmd = [sys.executable, "-m", "data_download", "acdc", "--dest", str(root), "--mirror",
           str(_mirror_folder(zip_path)), "--workers", str(workers), "--cleanup", "--quiet"]
    result.update(zip=str(zip_path), zip_bytes=zip_path.stat().st_size, command=" ".join(cmd[1:]))
    t0 = time.monotonic()
    rc, output = run_child(cmd, timeout)
    result["convert_seconds"] = round(time.monotonic() - t0, 1)
    result["output_tail"] = output.splitlines()[-6:]
    if rc != 0:
        # A re-run continues where this one stopped (data_download marks each patient done).
        why = f"timed out after {timeout:.0f} s" if rc is None else f"failed ({rc})"
        raise RuntimeError(f"python -m data_download acdc {why}: " + " | ".join(result["output_tail"]))
    return {**result, "status": "ok", "reused": False}


def load_training_data(cfg_data, seed: int) -> tuple[object, dict]:
    """Load the run's data (building the resized cache under <root>/cache on first use)."""
    from crossmatch_lite.data import load_data
    t0 = time.monotonic()
    data = load_data(cfg_data, seed=seed)
    info = {"dataset": cfg_data.name, "size": int(cfg_data.size),
            "train_slices": int(len(data.train_images)), "labeled_slices": int(len(data.labeled_idx)),
            "unlabeled_slices": int(len(data.unlabeled_idx)), "val_cases": len(data.val_cases),
            "test_cases": len(data.test_cases), "load_seconds": round(time.monotonic() - t0, 1)}
    return data, info


# ---------------------------------------------------------------- speed
# Table labels of bench_step's loops. "official" is the re-creation in benchmarks/official_loop.py.
LABELS = {"official": "official loop re-creation (fp32)", "ours": "ours fp32", "ours[bf16]": "ours bf16",
          "ours_compiled": "ours bf16 + torch.compile"}


def bench_command(out: Path, device: str, batch: int, size: int, repeats: int, data: str, root: str,
                  threads: int, sets: list[str], compiled: bool, warmup: int, extra: list[str] = ()) -> list[str]:
    """bench_step eager (ours fp32 and bf16 interleaved with the re-created official loop) or
    compiled (ours bf16 + torch.compile alone: compilation is slow and may fail, and must not
    take the eager numbers with it)."""
    cmd = [sys.executable, "-m", "benchmarks.bench_step", "--device", device, "--batch", str(batch),
           "--size", str(size), "--repeats", str(repeats), "--data", data, "--root", str(root),
           "--threads", str(threads), "--warmup", str(warmup), "--out", str(out), *extra]
    for s in sets:
        cmd += ["--set", s]
    if compiled:
        return cmd + ["--only-ours", "--compile", "--set", "train.amp=bf16"]
    return cmd + ["--set", "train.amp=off", "--variant", "bf16=train.amp=bf16"]


def run_bench(cmd: list[str], out: Path, timeout: float, log: Path) -> dict:
    t0 = time.monotonic()
    rc, output = run_child(cmd, timeout)
    status = "timeout" if rc is None else ("ok" if rc == 0 else "error")
    res = {"status": status, "command": " ".join(cmd[1:]), "seconds": round(time.monotonic() - t0, 1),
           "timeout_s": round(timeout, 1), "output_tail": output.splitlines()[-12:]}
    atomic_write_text(log, output)
    if status == "ok" and out.exists():
        res["file"] = str(out)
        res["result"] = json.loads(out.read_text())
    elif status == "ok":
        res["status"] = "error"
    return res


def speed_table(eager: dict | None, compiled: dict | None, card: str) -> list[dict]:
    """One row per loop; speed-up = the re-created official loop's s/it / this loop's s/it."""
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
    for key in LABELS:
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
    lines = ["| card | loop | s/it | images/s | peak memory (MiB) | GPU idle share | data-prep share "
             "| vs official re-creation |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['card']} | {r['loop']} | {fmt(r['s_per_it'], '.4f')} | {fmt(r['images_per_s'], '.1f')} | "
                     f"{fmt(r['peak_mem_mib'], '.0f')} | {fmt(r['gpu_idle_share'], '.3f')} | "
                     f"{fmt(r['data_prep_share'], '.3f')} | {fmt(r['speedup_vs_official'], '.2f')}x |")
    return "\n".join(lines)
