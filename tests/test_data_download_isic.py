"""ISIC 2018 Task 1: official zips -> DEST/<split>.h5."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import conftest_download as H
from data_download import check, isic, isic_convert, sources
from data_download.__main__ import main
from data_download.errors import DataDownloadError

TRAIN_IDS = ["0000003", "0000001", "0000002", "0000010"]


def build(folder: Path, split: str, ids, **kw):
    image_zip, mask_zip = sources.ISIC_SPLITS[split][:2]
    return H.make_isic_zips(folder, image_zip[:-4], mask_zip[:-4], ids, **kw)


@pytest.fixture
def bucket(tmp_path):
    """A server laid out like the S3 bucket: /2018/<zip>."""
    www = tmp_path / "www"
    truth = build(www / "2018", "train", TRAIN_IDS, extra_images=["0000020"],
                  extra_masks=["0000021"])
    truth.update(build(www / "2018", "val", ["0000100", "0000101"], seed=1))
    server = H.Server(www)
    yield server, truth
    server.close()


def opts(dest, mirror, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("log", lambda m: None)
    return isic.Options(dest=dest, mirror=mirror, backoff=0, **kw)


def load(path: Path) -> dict:
    with h5py.File(path) as f:
        return {"images": f["images"][:], "masks": f["masks"][:], "ids": list(f["ids"].asstr()[:]),
                "orig_sizes": f["orig_sizes"][:], "size": int(f.attrs["size"])}


def test_train_split_layout_values_and_unpaired(bucket, tmp_path, capsys):
    server, truth = bucket
    dest = tmp_path / "ISIC"
    assert main(["isic2018", "--dest", str(dest), "--mirror", server.url, "--splits", "train",
                 "--size", "32", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "0000020" in err and "0000021" in err  # unpaired files are reported
    assert "Codella" in err and "CC-0" in err and "CC-BY-NC" in err
    d = load(dest / "train.h5")
    ids = sorted(f"ISIC_{i}" for i in TRAIN_IDS)
    assert d["ids"] == ids
    assert d["images"].shape == (4, 32, 32, 3) and d["images"].dtype == np.uint8
    assert d["masks"].shape == (4, 32, 32) and d["masks"].dtype == np.uint8
    assert set(np.unique(d["masks"])) == {0, 1}
    for k, i in enumerate(ids):
        rgb, mask01 = truth[i]
        assert tuple(d["orig_sizes"][k]) == rgb.shape[:2]
        expect = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.Resampling.BOX))
        assert np.array_equal(d["images"][k], expect)
        expect_mask = np.asarray(Image.fromarray(mask01 * 255).resize(
            (32, 32), Image.Resampling.NEAREST)) > 127
        assert np.array_equal(d["masks"][k], expect_mask)
    # Streamed from the zips: nothing was extracted next to them.
    assert sorted(p.name for p in (dest / "downloads").iterdir()) == sorted(
        sources.ISIC_SPLITS["train"][:2])
    assert all(p.startswith("/2018/") for p in server.paths())
    problems, summary = check.check(dest)
    assert problems == [] and "train: 4 pairs 32x32" in summary


def test_plain_folder_mirror_several_splits(bucket, tmp_path):
    _, truth = bucket
    folder = tmp_path / "www" / "2018"  # a folder without the 2018/ prefix level
    res = isic.run(opts(tmp_path / "ISIC", str(folder), splits=["train", "val"], size=16))
    assert res["train"]["pairs"] == 4 and res["val"]["pairs"] == 2
    assert load(tmp_path / "ISIC" / "val.h5")["ids"] == ["ISIC_0000100", "ISIC_0000101"]


def test_default_download_skips_the_splits_a_training_only_mirror_lacks(bucket, tmp_path, capsys):
    server, _ = bucket  # train and val zips, no test zips
    dest = tmp_path / "ISIC"
    assert main(["isic2018", "--dest", str(dest), "--mirror", server.url, "--size", "16", "--quiet"]) == 0
    assert (dest / "train.h5").is_file() and (dest / "val.h5").is_file() and not (dest / "test.h5").exists()
    err = capsys.readouterr().err
    assert "skipping test: could not find ISIC2018_Task1_Test_GroundTruth.zip" in err
    # Named on the command line, a split is required.
    assert main(["isic2018", "--dest", str(dest), "--mirror", server.url, "--size", "16", "--quiet",
                 "--splits", "train,test"]) == 1
    assert "could not find ISIC2018_Task1_Test_GroundTruth.zip" in capsys.readouterr().err


def test_rerun_skips_and_new_size_redoes(bucket, tmp_path):
    server, _ = bucket
    dest = tmp_path / "ISIC"
    isic.run(opts(dest, server.url, splits=["train"], size=16))
    stamp = (dest / "train.h5").stat().st_mtime_ns
    n = len(server.log)
    isic.run(opts(dest, server.url, splits=["train"], size=16))
    assert len(server.log) == n and (dest / "train.h5").stat().st_mtime_ns == stamp
    isic.run(opts(dest, server.url, splits=["train"], size=24))
    assert len(server.log) == n  # zips are reused
    assert load(dest / "train.h5")["size"] == 24


def test_crash_midway_leaves_nothing_then_rerun_matches(bucket, tmp_path, monkeypatch):
    server, _ = bucket
    clean = tmp_path / "clean"
    isic.run(opts(clean, server.url, splits=["train"], size=16))
    dest = tmp_path / "crashed"
    real = isic_convert.prepare
    seen = []

    def crash_on_third(*a):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(isic_convert, "prepare", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        isic.run(opts(dest, server.url, splits=["train"], size=16))
    assert not (dest / "train.h5").exists() and not list(dest.glob(".*.tmp"))
    monkeypatch.setattr(isic_convert, "prepare", real)
    # A SIGKILL would leave the temp file; the next run must clean it up.
    (dest / ".train.h5.4242.tmp").write_bytes(b"half written")
    isic.run(opts(dest, server.url, splits=["train"], size=16))
    a, b = load(clean / "train.h5"), load(dest / "train.h5")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not list(dest.glob(".*.tmp"))


def test_interrupted_download_resumes(bucket, tmp_path):
    server, _ = bucket
    dest = tmp_path / "ISIC"
    server.script = [None, ("drop", 5000), 503]  # GT zip ok; the input zip dies midway
    with pytest.raises(DataDownloadError, match="re-run"):
        isic.run(opts(dest, server.url, splits=["train"], size=16, retries=0))
    image_zip = sources.ISIC_SPLITS["train"][0]
    assert (dest / "downloads" / (image_zip + ".part")).stat().st_size == 5000
    isic.run(opts(dest, server.url, splits=["train"], size=16))
    assert server.log[-1][1] == "bytes=5000-"
    assert load(dest / "train.h5")["images"].shape[0] == 4


def test_forbidden_points_to_isic_registration(bucket, tmp_path, capsys):
    server, _ = bucket
    server.mode = "403"
    assert main(["isic2018", "--dest", str(tmp_path / "I"), "--mirror", server.url,
                 "--splits", "val", "--quiet"]) == 1
    assert "challenge.isic-archive.com" in capsys.readouterr().err


def test_bad_arguments(tmp_path):
    with pytest.raises(DataDownloadError, match="unknown split"):
        isic.run(opts(tmp_path, None, splits=["training"]))
    with pytest.raises(DataDownloadError, match="too small"):
        isic.run(opts(tmp_path, None, size=2))


def test_bad_pair_is_named_and_skipped(tmp_path):
    import io
    www = tmp_path / "www"
    build(www, "val", ["0000100", "0000101"], sizes={"0000100": (30, 40), "0000101": (20, 24)})
    image_zip, mask_zip = (www / n for n in sources.ISIC_SPLITS["val"][:2])
    with zipfile.ZipFile(mask_zip, "w") as zf:  # 0000100 gets a mask of the wrong size
        for i, size in (("0000100", (10, 10)), ("0000101", (24, 20))):
            buf = io.BytesIO()
            Image.new("L", size).save(buf, "PNG")
            zf.writestr(f"ISIC2018_Task1_Validation_GroundTruth/ISIC_{i}_segmentation.png",
                        buf.getvalue())
    logs = []
    res = isic_convert.convert_split(image_zip, mask_zip, tmp_path / "val.h5", 16,
                                     progress=False, log=logs.append)
    assert any("ISIC_0000100: mask is 10x10 but image is 30x40" in m for m in logs)
    assert res["pairs"] == 1 and res["undecodable"] == ["ISIC_0000100"]
    d = load(tmp_path / "val.h5")
    assert d["ids"] == ["ISIC_0000101"] and d["images"].shape == (1, 16, 16, 3)
    assert tuple(d["orig_sizes"][0]) == (20, 24)


REAL = H.SHARED / "isic2018"


@pytest.mark.skipif(not (REAL / sources.ISIC_SPLITS["train"][0]).is_file(),
                    reason="real ISIC samples not present (set CROSSMATCH_LITE_SAMPLE_DATA)")
def test_real_isic_zips_give_60_pairs(tmp_path):
    server = H.Server(REAL.resolve())
    try:
        res = isic.run(opts(tmp_path / "ISIC", server.url, splits=["train"]))
    finally:
        server.close()
    assert res["train"]["pairs"] == 60 and not res["train"]["no_mask"]
    d = load(tmp_path / "ISIC" / "train.h5")
    assert d["images"].shape == (60, 256, 256, 3) and d["masks"].shape == (60, 256, 256)
    assert set(np.unique(d["masks"])) == {0, 1}
    assert (d["orig_sizes"].max(axis=1) <= 1024).all() and (d["orig_sizes"] > 0).all()
    assert check.check(tmp_path / "ISIC")[0] == []
