"""Downloads: resume, Range-less servers, verification, retries, access errors."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

import conftest_download as H
from data_download import http_fetch
from data_download.errors import AccessDenied, DataDownloadError
from data_download.http_fetch import fetch

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(PAYLOAD)
    s = H.Server(www)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    delays = []
    monkeypatch.setattr(http_fetch, "sleep", lambda s: delays.append(s))
    return delays


def get(server, dest, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("log", lambda m: None)
    return fetch(server.url + "blob.bin", dest, **kw)


def test_plain_download_verified(server, tmp_path):
    out = get(server, tmp_path / "d" / "blob.bin", expected_size=len(PAYLOAD), sha256=SHA)
    assert out.read_bytes() == PAYLOAD
    assert sorted(p.name for p in out.parent.iterdir()) == ["blob.bin"]  # no .part left


def test_resume_across_runs_uses_range(server, tmp_path):
    dest = tmp_path / "blob.bin"
    server.script = [("drop", 100_000), 503]
    with pytest.raises(DataDownloadError) as e:
        get(server, dest, retries=0, sha256=SHA)
    msg = str(e.value)
    assert server.url + "blob.bin" in msg and "re-run" in msg and "HTTP 503" in msg
    part = tmp_path / "blob.bin.part"
    assert not dest.exists() and part.stat().st_size == 100_000
    get(server, dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.log[-1] == ("/blob.bin", "bytes=100000-", 206)


def test_dropping_server_resumes_within_one_run(server, tmp_path, no_sleep):
    server.drop_after = 64 * 1024  # every response dies after 64 KiB
    out = get(server, tmp_path / "blob.bin", retries=1, sha256=SHA)
    assert out.read_bytes() == PAYLOAD
    ranges = [r for _, r, _ in server.log]
    assert ranges[0] is None and ranges[1] == "bytes=65536-" and len(ranges) == 5


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.mode = "norange"
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:1000])
    (tmp_path / "blob.bin.part.json").write_text('{"url": "%sblob.bin"}' % server.url)
    logs = []
    get(server, dest, sha256=SHA, log=logs.append)
    assert dest.read_bytes() == PAYLOAD  # not 1000 bytes + the whole file again
    assert server.log == [("/blob.bin", "bytes=1000-", 200)]
    assert any("ignored the Range" in m for m in logs)


def test_sha_mismatch_names_file_expected_and_actual(server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(DataDownloadError) as e:
        get(server, dest, sha256="0" * 64)
    msg = str(e.value)
    assert "blob.bin" in msg and "0" * 64 in msg and SHA in msg
    assert not dest.exists() and not (tmp_path / "blob.bin.part").exists()


def test_size_mismatch_is_reported(server, tmp_path):
    with pytest.raises(DataDownloadError) as e:
        get(server, tmp_path / "blob.bin", expected_size=12345)
    assert "blob.bin" in str(e.value) and "12345" in str(e.value) and "300000" in str(e.value)


def test_corrupt_part_with_stale_prefix_is_caught_by_checksum(server, tmp_path):
    # A .part from a different version of the file: resuming gives wrong bytes,
    # which the SHA-256 must catch; the next run then starts from zero.
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 5000)
    (tmp_path / "blob.bin.part.json").write_text('{"url": "%sblob.bin"}' % server.url)
    with pytest.raises(DataDownloadError, match="SHA-256 mismatch"):
        get(server, dest, sha256=SHA)
    assert get(server, dest, sha256=SHA).read_bytes() == PAYLOAD


def test_access_denied_says_where_to_register(server, tmp_path):
    server.mode = "403"
    with pytest.raises(AccessDenied) as e:
        get(server, tmp_path / "blob.bin", register_hint="register at https://example.org/x")
    assert "HTTP 403" in str(e.value) and "https://example.org/x" in str(e.value)
    assert len(server.log) == 1  # no pointless retries


def test_transient_errors_retry_with_exponential_backoff(server, tmp_path, no_sleep):
    server.script = [500, 502, 503]
    assert get(server, tmp_path / "blob.bin", backoff=0.5).read_bytes() == PAYLOAD
    assert no_sleep == [0.5, 1.0, 2.0]


def test_network_failure_gives_url_and_reason(tmp_path, no_sleep):
    with socket_closed_port() as port:
        url = f"http://127.0.0.1:{port}/blob.bin"
        with pytest.raises(DataDownloadError) as e:
            fetch(url, tmp_path / "blob.bin", retries=3, backoff=1, progress=False,
                  log=lambda m: None)
    assert url in str(e.value) and "refused" in str(e.value).lower()
    assert no_sleep == [1, 2, 4]


class socket_closed_port:
    def __enter__(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()  # nothing listens there any more
        return self.port

    def __exit__(self, *a):
        return False


def test_missing_everywhere_lists_candidates(server, tmp_path):
    with pytest.raises(DataDownloadError) as e:
        fetch([server.url + "a.zip", server.url + "b.zip"], tmp_path / "x.zip",
              progress=False, log=lambda m: None)
    assert "a.zip" in str(e.value) and "b.zip" in str(e.value) and "--mirror" in str(e.value)


def test_file_url_and_plain_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    a = fetch(http_fetch.join_url(src.as_uri(), "blob.bin"), tmp_path / "a" / "blob.bin",
              sha256=SHA, progress=False)
    b = fetch(http_fetch.join_url(str(src), "blob.bin"), tmp_path / "b" / "blob.bin",
              sha256=SHA, progress=False)
    assert a.read_bytes() == b.read_bytes() == PAYLOAD


def test_free_space_checked_before_download(server, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(DataDownloadError, match="not enough free disk space"):
        get(server, tmp_path / "blob.bin", extra_space=lambda total: 2 * total)
    part = tmp_path / "blob.bin.part"
    assert not part.exists() or part.stat().st_size == 0


def test_crash_in_callback_then_rerun_gives_same_file(server, tmp_path):
    dest = tmp_path / "blob.bin"

    def boom(n):
        if n > 100_000:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C

    server.delay = 0.0
    with pytest.raises(KeyboardInterrupt):
        get(server, dest, on_chunk=boom)
    assert not dest.exists() and (tmp_path / "blob.bin.part").exists()
    assert get(server, dest, sha256=SHA).read_bytes() == PAYLOAD


def size_of(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def test_sigkill_midway_then_rerun(server, tmp_path):
    server.delay = 0.02  # ~16 KiB per 20 ms: the kill lands mid-file
    dest = tmp_path / "blob.bin"
    code = ("import sys; from data_download.http_fetch import fetch; "
            f"fetch({server.url + 'blob.bin'!r}, __import__('pathlib').Path({str(dest)!r}), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=H.ROOT)
    part = tmp_path / "blob.bin.part"
    deadline = time.time() + 20
    while time.time() < deadline and size_of(part) <= 50_000:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not dest.exists() and part.exists()
    server.delay = 0
    assert get(server, dest, sha256=SHA).read_bytes() == PAYLOAD
    assert server.log[-1][1] is not None and server.log[-1][1].startswith("bytes=")


def test_large_download_streams_in_constant_memory(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    big = www / "big.bin"
    with open(big, "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1 << 20))
    server = H.Server(www)
    try:
        tracemalloc.start()
        fetch(server.url + "big.bin", tmp_path / "big.bin", progress=True, log=lambda m: None)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        server.close()
    assert (tmp_path / "big.bin").stat().st_size == 48 << 20
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes for a 48 MiB download"


def test_rangeless_server_dropping_at_the_same_offset_gives_up_after_retries(server, tmp_path, monkeypatch):
    """Bytes that only fill the .part up to where it already was are no progress: without
    this, every attempt reset the failure count and --retries 1 restarted forever."""
    server.mode, server.drop_after = "norange", 64 * 1024
    waits = []

    def bounded_sleep(s):  # a loop that never gives up fails here instead of hanging
        waits.append(s)
        assert len(waits) < 20, "still retrying after 20 attempts"

    monkeypatch.setattr(http_fetch, "sleep", bounded_sleep)
    with pytest.raises(DataDownloadError, match="gave up after 2 attempts without progress"):
        get(server, tmp_path / "blob.bin", retries=1, sha256=SHA)
    assert len(server.log) == 3  # the first attempt got 64 KiB; the next two got no further
    assert (tmp_path / "blob.bin.part").stat().st_size == 64 * 1024


def test_each_retry_says_how_long_a_silent_server_can_make_it_wait(server, tmp_path, monkeypatch):
    """With the defaults a silent server costs 6 attempts of 60 s before giving up: say so."""
    server.mode, server.drop_after = "norange", 64 * 1024
    monkeypatch.setattr(http_fetch, "sleep", lambda s: None)
    said = []
    with pytest.raises(DataDownloadError):
        get(server, tmp_path / "blob.bin", retries=2, sha256=SHA, log=said.append)
    assert said and "(gives up after 3 attempts without progress, each waiting up to 60 s for the server)" in said[0]
