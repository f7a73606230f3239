"""LA: the published Left Atrium files, fetched against a manifest.

Small synthetic volumes served over 127.0.0.1 stand in for the 233 MB of real files;
the last test uses the real ones when LA_MIRROR names a local copy of them.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import conftest_download as H
from data_download import check, http_fetch, la, manifest, sources
from data_download.__main__ import main
from data_download.errors import DataDownloadError

SET = sources.LA_SET_DIR  # "2018LA_Seg_Training Set/"
IDS = [f"{k:02d}SYNTHETICLAVOLUME"[:20].ljust(20, "X") for k in range(10)]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(http_fetch, "sleep", lambda s: None)


def make_source(data: Path, ids=IDS, seed=0) -> list[manifest.Entry]:
    """A copy of CrossMatch's LA/data/ in miniature: DATA/2018LA_Seg_Training Set/..."""
    rng = np.random.default_rng(seed)
    root = data / SET
    for k, i in enumerate(ids):
        (root / i).mkdir(parents=True)
        shape = (20 + k, 18, 12)
        with h5py.File(root / i / la.VOLUME, "w") as f:
            f["image"] = rng.normal(size=shape).astype(np.float32)
            f["label"] = (rng.random(shape) > 0.8).astype(np.uint8)
    train, test = ids[:8], ids[8:]
    lists = {"train.list": train, "test.list": test,
             "train_4_label.list": train[:4], "train_4_unlabel.list": train[4:],
             "train_8_label.list": train, "train_8_unlabel.list": []}
    for name, members in lists.items():
        (root / name).write_text("".join(m + "\n" for m in members))
    (root / "README.md").write_text("not in the manifest\n")
    entries = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "README.md":
            entries.append(manifest.Entry(str(p.relative_to(data)), p.stat().st_size,
                                          hashlib.sha256(p.read_bytes()).hexdigest()))
    return entries


@pytest.fixture
def source(tmp_path):
    data = tmp_path / "LA_data"
    entries = make_source(data)
    server = H.Server(data)
    yield data, entries, server
    server.close()


def opts(dest, mirror, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("log", lambda m: None)
    return la.Options(dest=dest, mirror=mirror, backoff=0, **kw)


def assert_complete(dest: Path, data: Path, entries):
    for e in entries:
        assert (dest / la.local_name(e.path)).read_bytes() == (data / e.path).read_bytes(), e.path
    assert not list(dest.rglob("*.part")) and not list(dest.rglob("*.part.json"))
    problems, summary = check.check_la(dest, quick=False, entries=entries)
    assert problems == [], problems
    assert f"{len(IDS)} volumes" in summary and "note" not in summary


def test_shipped_manifest_matches_published_facts():
    entries = manifest.load(manifest.LA_MANIFEST)
    assert len(entries) == 108 and len(la.volume_ids(entries)) == 100
    assert {la.local_name(e.path) for e in entries if e.path.endswith(".list")} == set(sources.LA_LISTS)
    assert sum(e.size for e in entries) == 233_100_128
    assert all(e.path.startswith(SET) and len(e.sha256) == 64 for e in entries)
    assert la.default_base() == ("https://raw.githubusercontent.com/AiEson/CrossMatch/"
                                 "59772e00c3d2bee5e3a603e596ef120eb9f88fd3/LA/data/")
    assert http_fetch.join_url(la.default_base(), entries[0].path).endswith(
        "/LA/data/2018LA_Seg_Training%20Set/06SR5RBREL16DQ6M8LWS/mri_norm2.h5")


def test_download_over_http_layout_marker_and_quick_rerun(source, tmp_path):
    data, entries, server = source
    dest = tmp_path / "LA"
    logs = []
    summary = la.run(opts(dest, server.url, log=logs.append), entries=entries)
    assert_complete(dest, data, entries)
    assert summary["volumes"] == 10 and summary["files"] == len(entries)
    assert summary["lists"]["train.list"] == 8 and summary["lists"]["test.list"] == 2
    assert sorted(p.name for p in dest.glob("*.list")) == sorted(
        n for n in sources.LA_LISTS if "16" not in n)
    assert not (dest / "README.md").exists() and not (dest / SET).exists()
    with h5py.File(dest / IDS[3] / la.VOLUME) as f:
        assert f["image"].dtype == np.float32 and f["label"].dtype == np.uint8
    assert "Xiong" in (dest / "LA_CITATION.md").read_text()
    assert sum("Xiong" in m for m in logs) == 1  # citation and terms printed once
    assert all(" " not in path and "%20" in path for path in server.paths())  # URL-quoted
    n = len(server.log)
    again = la.run(opts(dest, server.url), entries=entries)
    assert len(server.log) == n and again["volumes"] == 10  # verified: nothing fetched
    # A verified file deleted by hand is fetched again, and only that one.
    (dest / IDS[0] / la.VOLUME).unlink()
    la.run(opts(dest, server.url), entries=entries)
    assert server.paths()[n:] == ["/" + http_fetch.urllib.parse.quote(SET + IDS[0] + "/" + la.VOLUME)]
    assert_complete(dest, data, entries)


def test_dropping_server_resumes_within_one_run(source, tmp_path):
    data, entries, server = source
    server.drop_after = 4000  # every response dies after 4000 bytes
    dest = tmp_path / "LA"
    la.run(opts(dest, server.url, retries=1), entries=entries)
    assert_complete(dest, data, entries)
    assert any(r == "bytes=4000-" and code == 206 for _, r, code in server.log)


def test_failed_run_keeps_verified_files_and_rerun_resumes(source, tmp_path):
    data, entries, server = source
    dest = tmp_path / "LA"
    # One thread: files in manifest order. The third file drops after 3000 bytes, then
    # the server answers 503 and the run (retries=0) gives up on that file only.
    server.script = [None, None, ("drop", 3000), 503]
    with pytest.raises(DataDownloadError) as e:
        la.run(opts(dest, server.url, retries=0, threads=1), entries=entries)
    msg = str(e.value)
    bad = dest / la.local_name(entries[2].path)
    assert "1 of" in msg and "kept" in msg and "re-run" in msg and "HTTP 503" in msg
    assert bad.name in msg
    assert not bad.exists() and bad.with_name(bad.name + ".part").stat().st_size == 3000
    others = [e for k, e in enumerate(entries) if k != 2]
    assert all((dest / la.local_name(x.path)).is_file() for x in others)
    assert not (dest / ".data_download" / "la.done").exists()
    problems, _ = check.check_la(dest, quick=True, entries=entries)
    assert any("did not finish" in p for p in problems)
    assert any(p.startswith(str(bad) + ": missing") for p in problems)
    assert any(".part: partial download" in p for p in problems)
    n = len(server.log)
    la.run(opts(dest, server.url), entries=entries)
    assert server.log[n:] == [(server.log[n][0], "bytes=3000-", 206)]  # only the tail of that one
    assert_complete(dest, data, entries)


def size_or_0(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def test_sigkill_midway_then_rerun(source, tmp_path):
    data, entries, server = source
    server.delay = 0.03  # ~30 ms per 16 KiB: a file takes about 50 ms
    tsv = tmp_path / "la.tsv"
    with open(tsv, "w") as f:
        manifest.dump(entries, f)
    dest = tmp_path / "LA"
    code = ("import sys; from pathlib import Path; from data_download import la, manifest\n"
            f"entries = manifest.load(Path({str(tsv)!r}))\n"
            f"la.run(la.Options(dest=Path({str(dest)!r}), mirror={server.url!r}, threads=1, "
            "progress=False), entries=entries)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=H.ROOT, stderr=subprocess.DEVNULL)
    volumes = [dest / i / la.VOLUME for i in IDS]
    deadline = time.time() + 30
    while time.time() < deadline and sum(p.is_file() for p in volumes) < 3:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = [p for p in volumes if p.is_file()]
    assert 3 <= len(done) < len(IDS)
    assert not (dest / ".data_download" / "la.done").exists()
    server.delay = 0
    n = len(server.log)
    la.run(opts(dest, server.url), entries=entries)
    assert_complete(dest, data, entries)
    fetched_again = {p for p, _, _ in server.log[n:]}
    assert not any(http_fetch.urllib.parse.quote(str(p.relative_to(dest))) in q
                   for p in done for q in fetched_again)


def test_ctrl_c_stops_promptly_and_keeps_what_is_verified(source, tmp_path, monkeypatch):
    data, entries, server = source
    server.delay = 0.02

    class InterruptedBar:  # the main thread gets Ctrl-C when the first file is done
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            raise KeyboardInterrupt

    monkeypatch.setattr(manifest, "tqdm", InterruptedBar)
    dest = tmp_path / "LA"
    t0 = time.time()
    with pytest.raises(KeyboardInterrupt):
        la.run(opts(dest, server.url, threads=2), entries=entries)
    assert time.time() - t0 < 5
    finished = [e for e in entries if (dest / la.local_name(e.path)).is_file()]
    assert 1 <= len(finished) <= 3  # queued files were cancelled, not fetched regardless
    for e in finished:
        assert (dest / la.local_name(e.path)).read_bytes() == (data / e.path).read_bytes()
    monkeypatch.undo()
    server.delay = 0
    la.run(opts(dest, server.url), entries=entries)
    assert_complete(dest, data, entries)


def test_corrupted_file_is_refused_and_nothing_verified_lost(source, tmp_path):
    data, entries, server = source
    victim = entries[1]
    src = data / victim.path
    raw = bytearray(src.read_bytes())
    raw[-100] ^= 0xFF  # same size, one byte different
    src.write_bytes(bytes(raw))
    dest = tmp_path / "LA"
    with pytest.raises(DataDownloadError) as e:
        la.run(opts(dest, server.url), entries=entries)
    msg = str(e.value)
    assert "SHA-256 mismatch" in msg and victim.sha256 in msg
    assert hashlib.sha256(bytes(raw)).hexdigest() in msg
    assert Path(victim.path).parent.name in msg or Path(victim.path).name in msg
    assert "--mirror" in msg and "kept" in msg
    target = dest / la.local_name(victim.path)
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
    kept = [dest / la.local_name(x.path) for x in entries if x is not victim]
    assert all(p.is_file() for p in kept)
    # A verified file someone shortened by hand is reported, never silently deleted.
    shortened = kept[0]
    shortened.write_bytes(shortened.read_bytes()[:100])
    with pytest.raises(DataDownloadError) as e:
        la.run(opts(dest, server.url), entries=entries)
    assert f"delete {shortened}" in str(e.value) and shortened.stat().st_size == 100


def test_folder_and_file_url_mirrors(source, tmp_path):
    data, entries, _ = source
    # LA/data itself (as a path and as a file:// URL), a clone of the whole repository,
    # and the '2018LA_Seg_Training Set' folder itself.
    repo = tmp_path / "CrossMatch"
    (repo / "LA").mkdir(parents=True)
    os.symlink(data, repo / "LA" / "data")
    for name, mirror in (("folder", str(data)), ("file_url", data.as_uri()),
                         ("repo", str(repo)), ("set_dir", str(data / SET))):
        dest = tmp_path / name
        la.run(opts(dest, mirror), entries=entries)
        assert_complete(dest, data, entries)
    with pytest.raises(DataDownloadError, match=r"LA/data/ folder"):
        la.run(opts(tmp_path / "bad", str(tmp_path / "CrossMatch" / "LA")), entries=entries)


def test_cli_help_carries_citation_and_terms(capsys):
    with pytest.raises(SystemExit) as e:
        main(["la", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Xiong" in out and "Medical Image Analysis 67" in out and "research use" in out
    assert "UA-MT" in out and "LA/data/" in out


# --- the real files (a local copy of CrossMatch's LA/data/) --------------------

REAL = Path(os.environ["LA_MIRROR"]) if os.environ.get("LA_MIRROR") else None


@pytest.mark.skipif(REAL is None or not (REAL / SET).is_dir(), reason=(
    f"{'LA_MIRROR is not set' if REAL is None else f'no published LA files at {REAL}'} (set LA_MIRROR "
    "to a copy of AiEson/CrossMatch's LA/data/ folder)"))
def test_real_files_pass_the_shipped_manifest(tmp_path, capsys):
    dest = tmp_path / "LA"
    assert main(["la", "--mirror", str(REAL), "--dest", str(dest), "--quiet"]) == 0
    assert len(list(dest.glob(f"*/{la.VOLUME}"))) == 100
    assert main(["check", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "LA OK: 100 volumes" in out and "train.list 80, test.list 20" in out
    assert "SHA-256 match" in out
