"""The `folder` dataset: PNG and NIfTI pairs, a seeded split with fixed val/test cases, and
a clear message for each mistake a user can make with a folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmatch_lite.config import load_config
from crossmatch_lite.data import load_data
from crossmatch_lite.data.folder import write_example_folder


def _load(root, *extra, seed=0):
    cfg = load_config(None, ["data.name=folder", f"data.root={root}", "data.size=32", "data.labeled=2", *extra])
    return load_data(cfg.data, seed=seed)


@pytest.fixture(scope="module")
def png_root(tmp_path_factory):
    return write_example_folder(tmp_path_factory.mktemp("png"), n_cases=10)


def test_png_pairs_become_2d_cases(png_root):
    d = _load(png_root)
    assert d.name == "folder" and d.num_classes == 4 and d.class_names == ["background", "RV", "Myo", "LV"]
    assert d.in_channels == 1 and d.train_images.shape[1:] == (1, 32, 32) and d.train_images.dtype == np.float16
    assert (len(d.split["val"]), len(d.split["test"]), len(d.split["labeled"])) == (1, 2, 2)
    assert len(d.labeled_idx) == 2 and len(d.unlabeled_idx) == 5
    case = d.test_cases[0]
    assert case.image.shape == (1, 1, 96, 96) and case.label.shape == (1, 96, 96) and case.spacing is None
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0


def test_nifti_volumes_keep_their_spacing(tmp_path):
    d = _load(write_example_folder(tmp_path, n_cases=6, fmt="nifti"))
    case = d.test_cases[0]
    assert case.image.ndim == 4 and case.image.shape[0] > 1 and case.label.shape == (case.image.shape[0], 96, 96)
    assert case.spacing is not None and case.spacing[0] == pytest.approx(10.0)
    assert len(d.train_images) == sum(1 for _ in d.labeled_idx) + sum(1 for _ in d.unlabeled_idx)


def test_seed_changes_the_labeled_cases_not_the_test_cases(png_root):
    a, b = _load(png_root, seed=0), _load(png_root, seed=3)
    assert a.split["test"] == b.split["test"] and a.split["val"] == b.split["val"]
    assert a.split["labeled"] != b.split["labeled"] or a.split["unlabeled"] != b.split["unlabeled"]
    assert _load(png_root, seed=3).split == b.split


def test_split_file_is_honoured(png_root, tmp_path):
    import json

    split = _load(png_root).split
    (tmp_path / "split.json").write_text(json.dumps(split))
    assert _load(png_root, f"data.split_file={tmp_path / 'split.json'}", seed=5).split["labeled"] == split["labeled"]


def _broken(tmp_path, n=5):
    return write_example_folder(tmp_path / "d", n_cases=n)


@pytest.mark.parametrize("damage, error, message", [
    (lambda r: (r / "masks" / "case001.png").unlink(), ValueError, "images without a mask: case001"),
    (lambda r: Image.new("L", (10, 12)).save(r / "masks" / "case002.png"), ValueError, "case002.*mask"),
    (lambda r: Image.new("RGB", (96, 96)).save(r / "images" / "case003.png"), ValueError, "channels"),
    (lambda r: (r / "classes.txt").write_text("background\nRV\n"), ValueError, "classes.txt names 2 classes"),
    (lambda r: [p.unlink() for p in sorted((r / "images").iterdir())[1:] + sorted((r / "masks").iterdir())[1:]],
     ValueError, "at least 4"),
    (lambda r: __import__("shutil").rmtree(r / "masks"), FileNotFoundError, "images/ and masks/"),
])
def test_mistakes_are_named(tmp_path, damage, error, message):
    root = _broken(tmp_path)
    damage(root)
    with pytest.raises(error, match=message):
        _load(root)


def test_missing_root_says_what_a_folder_needs(tmp_path):
    with pytest.raises(FileNotFoundError, match="ROOT/images"):
        _load(tmp_path / "nowhere")


def test_folder_is_a_valid_data_name():
    from crossmatch_lite.config import CHOICES
    from crossmatch_lite.data import DATASETS

    assert "folder" in CHOICES["data.name"] and "folder" in DATASETS


def _relabel(root: Path, mapping: dict[int, int]) -> Path:
    """Rewrite every PNG mask of an example folder through `mapping` (class id -> value)."""
    lut = np.arange(256, dtype=np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    for p in (root / "masks").glob("*.png"):
        Image.fromarray(lut[np.asarray(Image.open(p))]).save(p)
    return root


def test_masks_saved_as_0_and_255_are_binary(tmp_path):
    root = _relabel(write_example_folder(tmp_path, n_cases=5), {1: 255, 2: 255, 3: 255})
    (root / "classes.txt").unlink()
    d = _load(root)
    assert d.num_classes == 2 and d.class_names == ["background", "class 1"]
    assert set(np.unique(d.train_labels)) == {0, 1} and set(np.unique(d.test_cases[0].label)) == {0, 1}


def test_class_ids_with_gaps_are_refused_unless_classes_txt_names_them(tmp_path):
    from crossmatch_lite.data import DataError

    root = _relabel(write_example_folder(tmp_path, n_cases=5), {2: 1, 3: 200})  # ids 0, 1, 200
    (root / "classes.txt").unlink()
    with pytest.raises(DataError, match=r"class ids 0, 1, 200 with gaps .*masks.case\d+\.png.*classes\.txt") as e:
        _load(root)
    assert "\n" not in str(e.value)
    (root / "classes.txt").write_text("\n".join(["background"] + [f"c{k}" for k in range(1, 201)]) + "\n")
    assert _load(root).num_classes == 201


def _bomb(root, monkeypatch):
    import PIL.Image

    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)  # 96x96 = 9216 > twice the limit: refused


def _truncate(path: Path, n: int = 100):
    path.write_bytes(path.read_bytes()[:n])


@pytest.mark.parametrize("damage, message", [
    (lambda r, m: Image.new("L", (10, 12)).save(r / "masks" / "case002.png"),
     r"images/case002\.png is 96x96 pixels but its mask \S*masks/case002\.png is 10x12 pixels"),
    (lambda r, m: Image.new("RGB", (96, 96)).save(r / "masks" / "case001.png"), r"masks/case001\.png has 3 channels"),
    (lambda r, m: (r / "classes.txt").write_text("background\nRV\n"),
     r"masks/case\d+\.png holds class id 3 but \S*classes\.txt names 2 classes"),
    (lambda r, m: (r / "masks" / "case001.png").unlink(), r"images without a mask: case001 \(\S*images/case001\.png\)"),
    (lambda r, m: [p.unlink() for p in sorted((r / "images").iterdir())[3:] + sorted((r / "masks").iterdir())[3:]],
     r"3 case\(s\) in \S*images; the default split needs at least 4"),
    (lambda r, m: (r / "images" / "case000.PNG").write_bytes((r / "images" / "case000.png").read_bytes()),
     r"two files for case 'case000': \S*images/case000\.PNG and \S*images/case000\.png; keep one"),
    (lambda r, m: Image.new("LA", (96, 96)).save(r / "images" / "case003.png"),
     r"1 channel \(grayscale: .*\) and 2 channels \(grayscale \+ alpha, mode LA: case003\.png\)"),
    (lambda r, m: (r / "classes.txt").write_bytes("background\nRV\nMyo\nLV \xe9\n".encode("latin-1")),
     r"classes\.txt is not UTF-8 text"),
    (_bomb, r"images/case\d+\.png is larger than PIL opens safely .*MAX_IMAGE_PIXELS"),
    (lambda r, m: _truncate(r / "images" / "case001.png"), r"images/case001\.png cannot be read .*truncated"),
    (lambda r, m: (r / "masks" / "case004.png").write_text("<html>not a mask</html>"),
     r"masks/case004\.png cannot be read .*not an image"),
    (lambda r, m: (r / "masks" / "case001.png").rename(r / "masks" / "case001.jpg"),
     r"images without a mask: case001 .*\(case001\.jpg: JPEG masks are not read"),
])
def test_bad_inputs_are_one_line_data_errors_naming_the_file(tmp_path, monkeypatch, damage, message):
    from crossmatch_lite.data import DataError

    root = _broken(tmp_path)
    damage(root, monkeypatch)
    with pytest.raises(DataError, match=message) as e:
        _load(root)
    assert "\n" not in str(e.value)


def test_truncated_png_is_named_by_the_cli_not_blamed_on_the_run_folder(tmp_path, capsys):
    from crossmatch_lite.__main__ import main

    root = _broken(tmp_path)
    _truncate(root / "images" / "case001.png")
    sets = ["data.name=folder", f"data.root={root}", "data.size=32", "data.labeled=2", "train.batch_size=2",
            "train.iterations=2", "train.val_every=2", "train.threads=1", "train.progress=false",
            "eval.distances=false"]
    code = main(["train", "--out", str(tmp_path / "run")] + [a for s in sets for a in ("--set", s)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "images/case001.png cannot be read" in err and "run folder" not in err


def test_nan_voxel_is_refused_with_file_and_count(tmp_path):
    """Min-max scaling with one NaN made the whole volume zeros; now the file is named."""
    import nibabel as nib

    from crossmatch_lite.data import DataError

    root = write_example_folder(tmp_path, n_cases=5, fmt="nifti")
    path = root / "images" / "case002.nii.gz"
    img = nib.load(str(path))
    vol = np.asarray(img.dataobj).astype(np.float32)
    vol[3, 4, 0], vol[5, 6, 1] = np.nan, np.inf
    nib.save(nib.Nifti1Image(vol, img.affine), str(path))
    with pytest.raises(DataError, match=r"images/case002\.nii\.gz holds 2 non-finite value\(s\)"):
        _load(root)


def test_a_nifti_mask_on_another_voxel_grid_than_its_image_is_refused(tmp_path):
    """A mask saved with x flipped in its affine labels the mirror image of the anatomy."""
    import nibabel as nib

    from crossmatch_lite.data import DataError

    root = write_example_folder(tmp_path, n_cases=5, fmt="nifti")
    path = root / "masks" / "case003.nii.gz"
    img = nib.load(str(path))
    flipped = img.affine @ np.diag([-1.0, 1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), flipped), str(path))
    with pytest.raises(DataError, match=r"masks/case003\.nii\.gz is not on its image's voxel grid"):
        _load(root)


def test_a_grey_palette_png_and_a_one_frame_4d_nifti_read_as_one_channel(tmp_path):
    import nibabel as nib

    from crossmatch_lite.data.folder import read_image

    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "P")
    grey.putpalette([v for i in range(256) for v in (i, i, i)])
    grey.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[0].shape == (1, 1, 8, 8)
    nib.save(nib.Nifti1Image(np.ones((6, 5, 4, 1), np.float32), np.eye(4)), str(tmp_path / "v.nii.gz"))
    assert read_image(tmp_path / "v.nii.gz")[0].shape == (4, 1, 5, 6)
