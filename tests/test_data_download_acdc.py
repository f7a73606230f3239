"""ACDC: official zip -> SSL4MIS HDF5 layout; published-HDF5 source; check; safety."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import conftest_download as H
from data_download import acdc, archive, check, manifest, sources
from data_download.__main__ import main
from data_download.errors import DataDownloadError

PATIENTS = (1, 2, 3, 4)


@pytest.fixture
def official(tmp_path):
    """A server that hosts a synthetic ACDC zip under the Creatis API path."""
    zip_path = tmp_path / "ACDC.zip"
    truth = H.make_acdc_zip(zip_path, patients=PATIENTS, testing=(101,))
    www = tmp_path / "www"
    H.acdc_www(www, zip_path)
    server = H.Server(www)
    yield server, truth, zip_path
    server.close()


def opts(dest, mirror, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("log", lambda m: None)
    kw.setdefault("workers", 1)
    return acdc.Options(dest=dest, mirror=mirror, backoff=0, **kw)


def read_all(dest: Path) -> dict:
    out = {}
    for p in sorted((dest / "data").rglob("*.h5")):
        with h5py.File(p) as f:
            out[str(p.relative_to(dest))] = (f["image"][:], f["label"][:], f["image"].dtype,
                                             f["label"].dtype, f["image"].compression)
    return out


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1]), k


def test_official_conversion_layout_and_values(official, tmp_path, capsys):
    server, truth, _ = official
    dest = tmp_path / "ACDC"
    assert main(["acdc", "--dest", str(dest), "--mirror", server.url, "--quiet",
                 "--workers", "2", "--backoff", "0"]) == 0
    err = capsys.readouterr().err
    assert "Bernard" in err and "10.1109/TMI.2018.2837502" in err and "CC BY-NC-SA 4.0" in err
    assert server.paths() == ["/" + sources.ACDC_API_PATH]
    got = read_all(dest)
    n_slices = 0
    for name, frames in truth.items():
        for out_frame, key in (("frame01", "ED"), ("frame02", "ES")):
            image, label = H.expected_acdc(*frames[key])
            vol = got[f"data/{name}_{out_frame}.h5"]
            assert vol[2] == np.float64 and vol[3] == np.uint8 and vol[4] == "gzip"
            assert np.array_equal(vol[0], image) and np.array_equal(vol[1], label)
            for k in range(1, image.shape[0] + 1):  # slices numbered from 1
                s = got[f"data/slices/{name}_{out_frame}_slice_{k}.h5"]
                assert np.array_equal(s[0], image[k - 1]) and np.array_equal(s[1], label[k - 1])
                n_slices += 1
    assert "data/patient101_frame01.h5" in got  # testing patients are included
    # Each volume carries its own spacing (z, y, x), so testing patients get mm figures too.
    from crossmatch_lite.data.acdc import read_case, spacing_table
    assert "patient101_frame01" not in spacing_table()
    assert read_case("patient101_frame01", dest / "data" / "patient101_frame01.h5").spacing == (10.0, 1.5, 1.5)
    assert len(got) == 2 * len(truth) + n_slices
    assert "Bernard" in (dest / "ACDC_CITATION.md").read_text()
    assert not list((dest / "raw").rglob("*_4d.nii.gz"))  # cine files not extracted
    problems, summary = check.check(dest)
    assert problems == [] and f"{2 * len(truth)} volumes" in summary


def test_mirror_with_short_name_and_local_folder(tmp_path):
    zip_path = tmp_path / "ACDC.zip"
    H.make_acdc_zip(zip_path, patients=(1,), testing=())
    www = tmp_path / "www"
    H.acdc_www(www, zip_path, api_path=False)
    server = H.Server(www)
    try:
        acdc.run_official(opts(tmp_path / "a", server.url))
    finally:
        server.close()
    assert [code for _, _, code in server.log] == [404, 200]  # API path first, then short name
    acdc.run_official(opts(tmp_path / "b", str(www)))
    acdc.run_official(opts(tmp_path / "c", www.as_uri()))
    assert_same(read_all(tmp_path / "a"), read_all(tmp_path / "b"))
    assert_same(read_all(tmp_path / "a"), read_all(tmp_path / "c"))


def test_rerun_skips_finished_work(official, tmp_path):
    server, _, _ = official
    dest = tmp_path / "ACDC"
    acdc.run_official(opts(dest, server.url))
    stamp = {p: p.stat().st_mtime_ns for p in (dest / "data").rglob("*.h5")}
    n_requests = len(server.log)
    summary = acdc.run_official(opts(dest, server.url))
    assert len(server.log) == n_requests
    assert {p: p.stat().st_mtime_ns for p in (dest / "data").rglob("*.h5")} == stamp
    assert summary["patients"] == len(PATIENTS) + 1


def test_crash_during_conversion_then_rerun_equals_clean_run(official, tmp_path, monkeypatch):
    server, _, _ = official
    clean = tmp_path / "clean"
    acdc.run_official(opts(clean, server.url))

    dest = tmp_path / "crashed"
    real = acdc.convert_patient
    calls = []

    def crash_on_third(folder, out):
        calls.append(folder.name)
        if len(calls) == 3:
            # Die after writing some slices of this patient, as a kill would.
            (out / "slices").mkdir(parents=True, exist_ok=True)
            (out / "slices" / f".{folder.name}_frame01_slice_1.h5.99.tmp").write_bytes(b"half")
            raise KeyboardInterrupt
        return real(folder, out)

    monkeypatch.setattr(acdc, "convert_patient", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        acdc.run_official(opts(dest, server.url))
    problems, _ = check.check(dest, quick=True)
    assert any("did not finish" in p for p in problems)  # does not look complete
    monkeypatch.setattr(acdc, "convert_patient", real)
    acdc.run_official(opts(dest, server.url))
    assert_same(read_all(clean), read_all(dest))
    assert not list(dest.rglob("*.tmp"))
    assert check.check(dest)[0] == []


def test_sigkill_during_conversion_then_rerun(official, tmp_path):
    server, _, _ = official
    clean = tmp_path / "clean"
    acdc.run_official(opts(clean, server.url))
    dest = tmp_path / "killed"
    # Slow each patient down so the kill lands between patients' outputs.
    code = (
        "import sys, time; from data_download import acdc; real = acdc.convert_patient\n"
        "def slow(f, o):\n    n = real(f, o); time.sleep(0.4); return n\n"
        "acdc.convert_patient = slow\n"
        "from data_download.__main__ import main\n"
        f"sys.exit(main(['acdc', '--dest', {str(dest)!r}, '--mirror', {server.url!r}, "
        "'--quiet', '--workers', '1']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=H.ROOT,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline and len(list((dest / "data").glob("patient*.h5"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (dest / ".data_download" / "acdc.done").exists()
    acdc.run_official(opts(dest, server.url))
    assert_same(read_all(clean), read_all(dest))


def test_corrupt_archive_reported_and_nothing_extracted(tmp_path):
    zip_path = tmp_path / "ACDC.zip"
    H.make_acdc_zip(zip_path, patients=(1, 2), testing=())
    data = bytearray(zip_path.read_bytes())
    # Flip bytes inside the first NIfTI member's compressed data: CRC must fail.
    with zipfile.ZipFile(zip_path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("frame01.nii.gz"))
    pos = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    data[pos:pos + 8] = bytes(8)
    zip_path.write_bytes(bytes(data))
    www = tmp_path / "www"
    H.acdc_www(www, zip_path, api_path=False)
    dest = tmp_path / "ACDC"
    with pytest.raises(DataDownloadError, match="corrupt archive"):
        acdc.run_official(opts(dest, str(www)))
    assert not (dest / "raw").exists() and not list(dest.rglob("*.tmp"))


@pytest.mark.parametrize("member, reason", [
    ("/etc/evil.txt", "absolute path"),
    ("database/../../evil.txt", ".."),
    ("database/link", "symbolic link"),
])
def test_unsafe_members_are_refused(tmp_path, member, reason):
    zip_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("database/ok.txt", "fine")
        info = zipfile.ZipInfo(member)
        if reason == "symbolic link":
            info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataDownloadError) as e:
        archive.safe_extract(zip_path, tmp_path / "out", progress=False)
    assert reason in str(e.value) and member in str(e.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_not_a_zip_is_reported(tmp_path):
    bad = tmp_path / "ACDC.zip"
    bad.write_bytes(b"<html>login page</html>")
    with pytest.raises(DataDownloadError, match="is an HTML page"):  # named as such
        archive.safe_extract(bad, tmp_path / "out", progress=False)
    bad.write_bytes(b"garbage, not a zip")
    with pytest.raises(DataDownloadError, match="corrupt or unreadable archive"):
        archive.safe_extract(bad, tmp_path / "out", progress=False)


def test_forbidden_points_to_creatis_registration(official, tmp_path, capsys):
    server, _, _ = official
    server.mode = "401"
    assert main(["acdc", "--dest", str(tmp_path / "A"), "--mirror", server.url, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "humanheart-project.creatis.insa-lyon.fr" in err


def test_check_reports_damage(official, tmp_path, capsys):
    server, _, _ = official
    dest = tmp_path / "ACDC"
    acdc.run_official(opts(dest, server.url))
    (dest / "data" / "slices" / "patient002_frame02_slice_2.h5").unlink()
    with h5py.File(dest / "data" / "slices" / "patient001_frame01_slice_1.h5", "r+") as f:
        f["label"][0, 0] = 9
    problems, _ = check.check(dest)
    assert any("patient002_frame02_slice_2.h5: missing" in p for p in problems)
    assert any("patient001_frame01_slice_1.h5: differs" in p for p in problems)
    assert main(["check", str(dest)]) == 1
    assert "problem" in capsys.readouterr().err


# --- the published HDF5 files ----------------------------------------------

def test_shipped_manifest_matches_published_facts():
    entries = manifest.load()
    assert len(entries) == 2102
    assert sum("/slices/" in e.path for e in entries) == 1902
    assert all(e.path.startswith(sources.CROSSMATCH_PREFIX) and len(e.sha256) == 64
               for e in entries)


def _fake_h5_manifest(tmp_path):
    www = tmp_path / "www"
    entries = []
    for rel in ("data/patient001_frame01.h5", "data/slices/patient001_frame01_slice_1.h5"):
        path = www / sources.CROSSMATCH_PREFIX / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode() * 1000)
        entries.append(manifest.Entry(sources.CROSSMATCH_PREFIX + rel, path.stat().st_size,
                                      hashlib.sha256(path.read_bytes()).hexdigest()))
    return www, entries


def test_h5_source_downloads_and_verifies(tmp_path):
    www, entries = _fake_h5_manifest(tmp_path)
    server = H.Server(www)
    try:
        dest = tmp_path / "ACDC"
        acdc.run_h5(opts(dest, server.url), entries=entries)
        assert (dest / "data" / "slices" / "patient001_frame01_slice_1.h5").is_file()
        n = len(server.log)
        acdc.run_h5(opts(dest, server.url), entries=entries)  # finished: no requests
        assert len(server.log) == n
        # A mirror serving a tampered file is caught, naming file and both hashes.
        bad = www / entries[0].path
        bad.write_bytes(bad.read_bytes()[::-1])
        with pytest.raises(DataDownloadError) as e:
            acdc.run_h5(opts(tmp_path / "other", server.url), entries=entries)
    finally:
        server.close()
    msg = str(e.value)
    assert "patient001_frame01.h5" in msg and entries[0].sha256 in msg
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in msg


# --- real data (skipped without CROSSMATCH_LITE_SAMPLE_DATA) ---------------------

REAL_ZIP = H.SHARED / "acdc" / "ACDC-training.zip"
REAL_SAMPLE = H.SHARED / "acdc" / "ACDC-h5-sample.zip"
needs_real = pytest.mark.skipif(not (REAL_ZIP.is_file() and REAL_SAMPLE.is_file()),
                                reason="real ACDC samples not present (set CROSSMATCH_LITE_SAMPLE_DATA)")


@needs_real
def test_real_acdc_zip_over_http_equals_published_files(tmp_path):
    www = tmp_path / "www"
    H.acdc_www(www, REAL_ZIP.resolve())
    server = H.Server(www)
    dest = tmp_path / "ACDC"
    try:
        summary = acdc.run_official(opts(dest, server.url, workers=0))
    finally:
        server.close()
    assert summary["volumes"] == 200 and summary["slices"] == 1902
    assert len(list((dest / "data").glob("*.h5"))) == 200
    assert len(list((dest / "data" / "slices").glob("*.h5"))) == 1902
    compared = 0
    with zipfile.ZipFile(REAL_SAMPLE) as zf:
        for name in zf.namelist():
            if not name.endswith(".h5"):
                continue
            with zf.open(name) as fh, h5py.File(fh) as ref, \
                    h5py.File(dest / name.split("ACDC/", 1)[1]) as ours:
                assert ours["image"].dtype == ref["image"].dtype == np.float64
                assert np.array_equal(ours["image"][:], ref["image"][:]), name
                assert np.array_equal(ours["label"][:], ref["label"][:]), name
            compared += 1
    assert compared == 66


@needs_real
def test_real_published_files_pass_the_shipped_manifest(tmp_path):
    # The sample holds files exactly as CrossMatch published them: serve them as a
    # mirror of raw.githubusercontent.com and fetch them with the shipped checksums.
    www = tmp_path / "www"
    with zipfile.ZipFile(REAL_SAMPLE) as zf:
        for name in zf.namelist():
            if name.endswith(".h5"):
                target = www / sources.CROSSMATCH_PREFIX / name.split("ACDC/", 1)[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    wanted = [e for e in manifest.load() if (www / e.path).is_file()]
    assert len(wanted) == 66
    server = H.Server(www)
    try:
        acdc.run_h5(opts(tmp_path / "ACDC", server.url), entries=wanted)
    finally:
        server.close()
    assert len(list((tmp_path / "ACDC" / "data").rglob("*.h5"))) == 66
