"""Atomic outputs, completion markers and the free-space check.

Every file a user might mistake for a finished result is written under a
temporary name in the same directory and renamed into place only once it is
whole: os.replace is atomic on one filesystem, so a crash leaves either the old
state or the new one, never a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from .errors import DataDownloadError

TMP_SUFFIX = ".tmp"
STATE_DIR = ".data_download"


def tmp_name(final: Path) -> Path:
    # Hidden and suffixed, so globs for finished files (*.h5, patient*) never
    # match a half-written one; the pid keeps two concurrent runs apart.
    return final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")


@contextlib.contextmanager
def atomic_path(final: Path):
    """Yield a temporary path; rename it to ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        # BaseException: a KeyboardInterrupt must not leave the temp file behind either.
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        raise


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_tmp(folder: Path) -> int:
    """Delete temp files a killed run left behind (SIGKILL skips every cleanup)."""
    n = 0
    if not folder.is_dir():
        return 0
    for p in folder.glob(f".*{TMP_SUFFIX}"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


class Markers:
    """Per-step completion markers under DEST/.data_download/.

    A marker is written only after its step's outputs are in place, so its
    presence means "done"; its JSON payload records the parameters the step ran
    with, so a re-run with different parameters redoes the step instead of
    silently keeping stale output.
    """

    def __init__(self, dest: Path):
        self.root = Path(dest) / STATE_DIR

    def _path(self, step: str) -> Path:
        return self.root / f"{step}.done"

    def done(self, step: str, params: dict | None = None) -> bool:
        p = self._path(step)
        if not p.is_file():
            return False
        try:
            recorded = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return params is None or recorded.get("params") == params

    def read(self, step: str) -> dict | None:
        try:
            return json.loads(self._path(step).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def mark(self, step: str, params: dict | None = None, **info) -> None:
        write_text_atomic(self._path(step), json.dumps({"params": params, **info}, indent=1))

    def clear(self, step: str) -> None:
        self._path(step).unlink(missing_ok=True)


def ensure_writable(dest: Path) -> None:
    """Create ``dest`` if needed and prove we can write there, before any download starts."""
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        probe = dest / f".write-test.{os.getpid()}{TMP_SUFFIX}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataDownloadError(
            f"cannot write to --dest {dest} ({e.strerror or e}). Choose a folder you can write to, "
            f"or fix its permissions."
        ) from None


def check_free_space(folder: Path, need_bytes: int, what: str) -> None:
    """Fail early, with numbers, rather than hours into a download."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need_bytes > free:
        raise DataDownloadError(
            f"not enough free disk space for {what} in {folder}: need about "
            f"{human_bytes(need_bytes)}, only {human_bytes(free)} free. Free some space or "
            f"choose another --dest."
        )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
