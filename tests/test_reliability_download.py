"""Downloads and archives: a mirror resumes, an HTML page is named as such,
a damaged zip member gets a message (and costs ISIC one pair, not the split), a read-only
--dest is refused up front."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import conftest_download as H
from data_download import http_fetch, isic_convert, sources
from data_download.__main__ import main
from data_download.archive import safe_extract
from data_download.errors import AccessDenied, DataDownloadError

PAYLOAD = os.urandom(300_000)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(http_fetch, "sleep", lambda s: None)


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = H.Server(root)
    yield root, server
    server.close()


def quiet(**kw):
    return dict(progress=False, log=lambda m: None, **kw)


def test_mirror_download_resumes_when_the_first_candidate_is_missing(www, tmp_path):
    root, server = www
    (root / "blob.zip").write_bytes(PAYLOAD)  # a plain folder: only the second candidate exists
    urls = [server.url + "2018/blob.zip", server.url + "blob.zip"]
    dest = tmp_path / "dl" / "blob.zip"
    server.script = [404, ("drop", 100_000), 503]
    with pytest.raises(DataDownloadError):
        http_fetch.fetch(urls, dest, retries=0, **quiet())
    part = dest.with_name("blob.zip.part")
    assert part.stat().st_size == 100_000
    http_fetch.fetch(urls, dest, **quiet())
    assert dest.read_bytes() == PAYLOAD
    assert ("/blob.zip", "bytes=100000-", 206) in server.log[3:]  # resumed, not started over


def test_the_candidate_a_part_came_from_is_resumed_first(www, tmp_path):
    root, server = www
    (root / "blob.zip").write_bytes(PAYLOAD)
    dest = tmp_path / "blob.zip"
    server.script = [("drop", 50_000), 503]
    with pytest.raises(DataDownloadError):
        http_fetch.fetch([server.url + "blob.zip"], dest, retries=0, **quiet())
    # A later run whose first candidate is another (missing) path must not delete the .part.
    http_fetch.fetch([server.url + "api/x", server.url + "blob.zip"], dest, **quiet())
    assert dest.read_bytes() == PAYLOAD
    assert server.log[-1] == ("/blob.zip", "bytes=50000-", 206)


def test_html_login_page_is_named_with_the_registration_text(www, tmp_path):
    root, server = www
    (root / "ISIC.zip").write_text("<!DOCTYPE html><html><body>Please log in</body></html>")
    with pytest.raises(AccessDenied) as e:
        http_fetch.fetch(server.url + "ISIC.zip", tmp_path / "ISIC.zip",
                         register_hint=sources.ISIC_REGISTER, **quiet())
    assert "HTML page" in str(e.value) and "challenge.isic-archive.com" in str(e.value)
    assert not list(tmp_path.glob("ISIC.zip*"))


def deflated_zip(path: Path, members: dict[str, bytes], damage: str | None = None) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    if damage:
        data = bytearray(path.read_bytes())
        info = zipfile.ZipFile(path).getinfo(damage)
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        data[start + 10:start + 60] = b"\xff" * 50  # garbles the deflate stream: zlib.error
        path.write_bytes(bytes(data))


def test_zlib_error_from_a_member_gets_a_message(tmp_path):
    z = tmp_path / "a.zip"
    deflated_zip(z, {"a/x.bin": os.urandom(100) * 50, "a/y.txt": b"ok" * 500}, damage="a/x.bin")
    with pytest.raises(DataDownloadError, match="corrupt archive .*a.zip"):
        safe_extract(z, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def _png(mode, size, color=0):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG" if mode == "L" else "JPEG")
    return buf.getvalue()


def test_isic_damaged_member_costs_one_pair_not_the_split(tmp_path):
    img, msk = (tmp_path / n for n in ("in.zip", "gt.zip"))
    ids = ["0000001", "0000002", "0000003"]
    # Large noisy images so that the deflate stream is long enough to damage.
    rng = __import__("numpy").random.default_rng(0)

    def jpg(i):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype="uint8")).save(buf, "JPEG")
        return buf.getvalue()

    deflated_zip(img, {f"in/ISIC_{i}.jpg": jpg(i) for i in ids}, damage="in/ISIC_0000002.jpg")
    deflated_zip(msk, {f"gt/ISIC_{i}_segmentation.png": _png("L", (60, 40), 255) for i in ids})
    logs = []
    res = isic_convert.convert_split(img, msk, tmp_path / "train.h5", 16, progress=False, log=logs.append)
    assert res["pairs"] == 2 and res["undecodable"] == ["ISIC_0000002"]
    assert any("ISIC_0000002.jpg" in m and "damaged" in m for m in logs)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_dest_is_refused_with_its_name(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code = main(["isic2018", "--dest", str(ro / "ISIC"), "--mirror", str(tmp_path), "--quiet"])
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "cannot write to --dest" in err and str(ro) in err


def test_read_only_dest_is_refused_even_as_root(tmp_path, monkeypatch, capsys):
    # Root bypasses permission bits; simulate the refusal the filesystem would give.
    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    code = main(["isic2018", "--dest", str(tmp_path / "ISIC"), "--mirror", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "cannot write to --dest" in err


@pytest.mark.parametrize("option, value", [("--backoff", "-1"), ("--retries", "-1"), ("--backoff", "inf")])
def test_negative_retries_or_backoff_are_refused_when_parsing(tmp_path, capsys, option, value):
    empty = tmp_path / "mirror"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["la", "--dest", str(tmp_path / "LA"), "--mirror", str(empty), "--quiet", option, value])
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert e.value.code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert f"argument {option}: must be 0 or more, got {value}" in errors[0]
    assert not (tmp_path / "LA").exists()


@pytest.mark.parametrize("path", [f"{sources.LA_SET_DIR}../../escaped.list", "/tmp/escaped.list"])
def test_manifest_entry_outside_dest_is_refused(tmp_path, path):
    from data_download import la, manifest

    mirror = tmp_path / "www" / "m"
    (mirror / sources.LA_SET_DIR).mkdir(parents=True)
    (tmp_path / "www" / "escaped.list").write_text("A1\n")  # what the '..' entry would fetch
    tsv = tmp_path / "bad.tsv"
    sha = __import__("hashlib").sha256(b"A1\n").hexdigest()  # right, so only the path can stop it
    tsv.write_text(f"path\tbytes\tsha256\n{path}\t3\t{sha}\n")
    dest = tmp_path / "out" / "LA"
    with pytest.raises(DataDownloadError, match="absolute path or climbs out with '..'"):
        la.run(la.Options(dest=dest, mirror=str(mirror), progress=False, log=lambda m: None), manifest.load(tsv))
    assert not (tmp_path / "escaped.list").exists() and not list(tmp_path.rglob("escaped.list.part*"))


@pytest.mark.parametrize("name", ["mri_norm2.h5", "train.list"])
def test_html_page_where_the_manifest_names_a_size_is_named_as_a_page(www, tmp_path, name):
    root, server = www
    (root / name).write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    with pytest.raises(AccessDenied) as e:
        http_fetch.fetch(server.url + name, tmp_path / name, expected_size=300_000, sha256="0" * 64, **quiet())
    assert "HTML page" in str(e.value) and "size mismatch" not in str(e.value)
    assert not list(tmp_path.glob(name + "*"))
