"""Resumable, verified downloads over HTTP(S), file:// URLs or plain folders.

Only the standard library speaks HTTP here (urllib), so the downloader adds no
dependency. A download goes to ``NAME.part`` and is renamed to ``NAME`` only
once its size (and SHA-256 where known) check out, so an existing ``NAME`` is
always a whole file and an existing ``NAME.part`` is always safe to resume.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from time import sleep  # module-level name, so tests can skip the waits
from pathlib import Path
from typing import BinaryIO, Callable

from tqdm import tqdm

from .errors import AccessDenied, DataDownloadError, NotFound
from .fsutil import check_free_space, human_bytes

CHUNK = 1 << 20  # 1 MiB: constant memory however big the file is
USER_AGENT = "crossmatch_lite-data_download/1.0 (+python urllib)"


class _Transient(Exception):
    """A failure worth retrying (dropped connection, timeout, 5xx)."""


def join_url(base: str, relpath: str) -> str:
    """``base`` + ``relpath`` for an http(s)/file URL or a local folder."""
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme in ("http", "https", "file"):
        if not base.endswith("/"):
            base += "/"
        return urllib.parse.urljoin(base, urllib.parse.quote(relpath))
    return str(Path(base) / relpath)


@dataclass
class _Opened:
    stream: BinaryIO
    start: int  # byte offset the stream starts at (0 if the server ignored Range)
    total: int | None  # full size of the remote file, when the source says
    validator: str | None  # ETag / Last-Modified, so a resume notices a changed file


def _local_path(url: str) -> Path | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme.lower() in ("http", "https"):
        return None
    return Path(url)


def _open(url: str, offset: int, validator: str | None, timeout: float,
          register_hint: str | None) -> _Opened:
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise NotFound(f"{local} does not exist")
        total = local.stat().st_size
        f = open(local, "rb")
        start = min(offset, total)
        f.seek(start)
        return _Opened(f, start, total, None)

    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            # If the file changed since the .part was started, the server sends
            # the whole new file (200) instead of a mismatched tail.
            headers["If-Range"] = validator
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in (401, 403):
            raise AccessDenied(
                f"access denied (HTTP {e.code}) for {url}. "
                + (register_hint or "Check that you are entitled to this file.")
            ) from None
        if e.code in (404, 410):
            raise NotFound(f"HTTP {e.code} for {url}") from None
        if e.code == 416:
            # Our .part is not a prefix of what the server has (e.g. longer):
            # signal the caller to start over.
            raise _Transient("HTTP 416 (range not satisfiable); restarting from zero") from None
        if e.code == 429 or e.code >= 500:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise DataDownloadError(f"HTTP {e.code} {e.reason} for {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _Transient(f"{type(e).__name__}: {reason}") from None

    new_validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
    length = resp.headers.get("Content-Length")
    if resp.status == 206:
        # Content-Range: bytes START-END/TOTAL
        cr = resp.headers.get("Content-Range", "")
        try:
            span, total_s = cr.split(" ", 1)[1].split("/")
            start = int(span.split("-")[0])
            total = None if total_s == "*" else int(total_s)
        except (IndexError, ValueError):
            resp.close()
            raise _Transient(f"unparseable Content-Range {cr!r}") from None
        if start != offset:
            resp.close()
            raise _Transient(f"server resumed at byte {start}, asked for {offset}")
        return _Opened(resp, start, total, new_validator)
    # 200: a server that ignores Range sends the whole file; we restart cleanly.
    total = int(length) if length is not None and length.isdigit() else None
    return _Opened(resp, 0, total, new_validator)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(
    urls: list[str] | str,
    dest: Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    register_hint: str | None = None,
    extra_space: int | Callable[[int], int] = 0,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Download the first of ``urls`` that exists to ``dest``; resume, retry, verify.

    ``extra_space`` is what the caller will need on top of the download (e.g.
    for extraction; a callable gets the file size), so the free-space check fails before the download, not
    after it. ``on_chunk(bytes_so_far)`` is called after every chunk.
    """
    dest = Path(dest)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if isinstance(urls, str):
        urls = [urls]
    if dest.is_file():
        # Only a verified download is ever renamed to ``dest``; re-check the
        # cheap facts in case someone replaced it by hand.
        _verify(dest, expected_size, sha256, dest.name, urls[0], delete=False)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The candidate a .part was started from goes first, so a mirror whose first
    # candidate path answers 404 still resumes instead of starting again.
    recorded = _read_meta(dest.with_name(dest.name + ".part.json")).get("url")
    if recorded in urls:
        urls = [recorded] + [u for u in urls if u != recorded]
    missing = []
    for url in urls:
        try:
            return _fetch_one(url, dest, expected_size, sha256, retries, backoff, timeout,
                              register_hint, extra_space, progress, on_chunk, log)
        except NotFound as e:
            missing.append(str(e))
    # NotFound (a DataDownloadError): a caller may treat a file the source lacks as optional.
    raise NotFound(
        f"could not find {dest.name} at any of: " + "; ".join(missing)
        + ". Check the --mirror URL (it should hold the file at one of those paths)."
    )


def _fetch_one(url, dest, expected_size, sha256, retries, backoff, timeout, register_hint,
               extra_space, progress, on_chunk, log) -> Path:
    part = dest.with_name(dest.name + ".part")
    meta_path = dest.with_name(dest.name + ".part.json")
    meta = _read_meta(meta_path)
    # A .part from another source may be another file altogether: do not resume it, but
    # do not delete it either until this source has answered (a 404 here must leave it for
    # the candidate it came from). Once this source sends data, _copy overwrites it.
    foreign = part.exists() and meta.get("url") != url
    if foreign:
        meta = {}
    failures = 0
    # Progress is the .part growing past its largest size so far, not any bytes received:
    # a server that ignores Range and drops the connection at the same offset each time
    # sends bytes on every attempt but never gets further, and must count as failing.
    largest = part.stat().st_size if part.exists() and not foreign else 0
    while True:
        offset = part.stat().st_size if part.exists() and not foreign else 0
        try:
            opened = _open(url, offset, meta.get("validator"), timeout, register_hint)
        except _Transient as e:
            if "416" in str(e):
                part.unlink(missing_ok=True)
            reason = str(e)
        else:
            try:
                total = opened.total if opened.total is not None else expected_size
                if expected_size is not None and opened.total is not None and opened.total != expected_size:
                    # A login or error page answered with 200 has another size than the file:
                    # say that it is a page, not that the file has the wrong size.
                    if opened.start == 0 and _is_html(opened.stream.read(512)):
                        raise _html_page(url, dest, register_hint)
                    raise DataDownloadError(
                        f"{dest.name}: size mismatch: expected {expected_size} bytes, the server "
                        f"announces {opened.total} ({url}). The mirror may hold another version."
                    )
                if offset and opened.start == 0:
                    log(f"{url}: server ignored the Range request; restarting {dest.name} from zero")
                elif opened.start:
                    log(f"resuming {dest.name} at {human_bytes(opened.start)}")
                if total is not None:
                    extra = extra_space(total) if callable(extra_space) else extra_space
                    check_free_space(dest.parent, total - opened.start + extra,
                                     f"downloading {dest.name}")
                meta = {"url": url, "validator": opened.validator, "total": opened.total}
                _write_meta(meta_path, meta)
                foreign = False
                _copy(opened, part, total, dest.name, progress, on_chunk)
            except (OSError, http.client.HTTPException) as e:
                if isinstance(e, OSError) and e.errno == 28:  # ENOSPC
                    raise DataDownloadError(
                        f"disk full while writing {part}; free space and re-run to resume"
                    ) from None
                reason = f"{type(e).__name__}: {e}"
            else:
                size = part.stat().st_size
                if total is None or size >= total:
                    break
                reason = f"connection closed after {size} of {total} bytes"
            finally:
                opened.stream.close()
        size = part.stat().st_size if part.exists() and not foreign else 0
        failures = 0 if size > largest else failures + 1
        largest = max(largest, size)
        if failures > retries:
            have = part.stat().st_size if part.exists() else 0
            raise DataDownloadError(
                f"download failed: {url}: {reason} (gave up after {retries + 1} attempts "
                f"without progress). {human_bytes(have)} kept in {part}; re-run the same "
                f"command to resume."
            )
        delay = backoff * (2 ** max(failures - 1, 0))
        # A silent server costs the whole timeout per attempt: say how long giving up can take.
        log(f"{url}: {reason}; retrying in {delay:.1f}s (gives up after {retries + 1} attempts without "
            f"progress, each waiting up to {timeout:.0f} s for the server)")
        sleep(delay)

    # Before the size check: a page where a known size was expected is a page, not a mismatch.
    _refuse_html(part, dest, url, register_hint, expected_size)
    _verify(part, expected_size if expected_size is not None else meta.get("total"), sha256,
            dest.name, url, delete=True)
    os.replace(part, dest)
    meta_path.unlink(missing_ok=True)
    return dest


def _copy(opened: _Opened, part: Path, total, name, progress, on_chunk) -> int:
    mode = "ab" if opened.start else "wb"
    received = 0
    # read1 returns what has arrived (up to CHUNK) instead of waiting for a full
    # chunk, so the .part file and the progress bar follow a slow link closely.
    read = getattr(opened.stream, "read1", opened.stream.read)
    with open(part, mode) as out, tqdm(
        total=total, initial=opened.start, unit="B", unit_scale=True, unit_divisor=1024,
        desc=name, disable=not progress, mininterval=0.5, leave=False,
    ) as bar:
        while True:
            block = read(CHUNK)
            if not block:
                break
            out.write(block)
            received += len(block)
            bar.update(len(block))
            if on_chunk is not None:
                out.flush()
                on_chunk(opened.start + received)
    return received


def _verify(path: Path, size: int | None, sha256: str | None, name: str, url: str,
            delete: bool) -> None:
    actual = path.stat().st_size
    problem = None
    if size is not None and actual != size:
        problem = f"size mismatch: expected {size} bytes, got {actual}"
    elif sha256 is not None:
        got = sha256_of(path)
        if got.lower() != sha256.lower():
            problem = f"SHA-256 mismatch: expected {sha256}, got {got}"
    if problem is None:
        return
    if delete:
        path.unlink(missing_ok=True)
        path.with_name(name + ".part.json").unlink(missing_ok=True)
        hint = "the bad download was deleted; re-run to fetch it again"
    else:
        hint = f"delete {path} and re-run to fetch it again"
    raise DataDownloadError(f"{name}: {problem} (source {url}); {hint}.")


HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--", b"<?xml")
BINARY_SUFFIXES = (".zip", ".h5", ".gz", ".nii", ".tar", ".npy")


def _is_html(head: bytes) -> bool:
    return head.lstrip().lower().startswith(HTML_STARTS)


def looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        return _is_html(f.read(512))


def _html_page(url: str, dest: Path, register_hint: str | None) -> AccessDenied:
    return AccessDenied(
        f"{url} answered with an HTML page (probably a login, consent or error page), not "
        f"{dest.name}; nothing was kept. "
        + (register_hint or "Check that the URL serves the file itself and that you may download it.")
    )


def _refuse_html(part: Path, dest: Path, url: str, register_hint: str | None,
                 expected_size: int | None = None) -> None:
    """A login or error page served with status 200 in place of a binary file, or of any
    file whose size is known and not met (a text file may start like HTML, a page may not)."""
    expected = dest.name.lower().endswith(BINARY_SUFFIXES) or (
        expected_size is not None and part.stat().st_size != expected_size)
    if not expected or not looks_like_html(part):
        return
    part.unlink(missing_ok=True)
    part.with_name(dest.name + ".part.json").unlink(missing_ok=True)
    raise _html_page(url, dest, register_hint)


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, path)
