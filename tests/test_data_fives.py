"""FIVES reader on a few small RGB photographs written here in the release's layout
(train|test / Original|Ground truth / <n>_<A|D|G|N>.png, masks 0/255 with three channels,
as public FIVES loaders read them), the files it refuses before training (0/2 masks, JPEG or
empty photograph folders, damaged test photographs, preset counts that do not fit), the
FIVES presets trained 2 iterations at toy size, and, where $CROSSMATCH_LITE_SAMPLE_DATA holds
them, 19 real FIVES photographs."""
import json

import numpy as np
import pytest
from PIL import Image

from crossmatch_lite.config import load_config
from crossmatch_lite.data import DataError, load_data
from crossmatch_lite.train import train

RELEASE = "FIVES A Fundus Image Dataset for AI-based Vessel Segmentation"  # the folder the archive unpacks into
COUNTS = {"train": 8, "test": 3}  # 600 and 200 in the release
H, W = 40, 48  # 2048 x 2048 in the release
TINY = ["data.labeled=2", "data.val_count=2", "data.size=32", "model.channels=[4,8,16,32,64]",
        "train.iterations=2", "train.val_every=2", "train.threads=1", "train.progress=false", "train.amp=off",
        "eval.distances=false"]


def write_pair(folder, name, rng):
    yy, xx = np.mgrid[:H, :W]
    vessel = np.abs(yy - rng.integers(8, H - 8) - 0.3 * (xx - W / 2)) < 2  # one dark line on a red disc
    image = np.stack([np.full((H, W), 180), np.full((H, W), 90), np.full((H, W), 40)], -1)
    image[vessel] //= 2
    image = np.clip(image + rng.integers(-10, 11, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(folder / "Original" / name)
    Image.fromarray(np.repeat(vessel[..., None] * np.uint8(255), 3, -1)).save(folder / "Ground truth" / name)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """The folder the release unpacks into; data.root may name it or the folder inside."""
    top = tmp_path_factory.mktemp("FIVES")
    rng = np.random.default_rng(0)
    for part, n in COUNTS.items():
        for sub in ("Original", "Ground truth"):
            (top / RELEASE / part / sub).mkdir(parents=True)
        for i in range(1, n + 1):
            write_pair(top / RELEASE / part, f"{i}_{'ADGN'[i % 4]}.png", rng)
    return top


def test_the_release_layout_loads_as_rgb_with_binary_masks(unpacked):
    cfg = load_config("configs/fives.yaml", [f"data.root={unpacked}"] + TINY).data
    data = load_data(cfg, 0)
    assert data.in_channels == 3 and data.class_names == ["background", "vessel"]
    assert data.train_images.shape == (COUNTS["train"] - 2, 3, 32, 32) and set(np.unique(data.train_labels)) == {0, 1}
    assert data.split["test"] == [f"test/{i}_{'ADGN'[i % 4]}" for i in range(1, 4)] and len(data.val_cases) == 2
    case = data.test_cases[0]  # read when asked for, at the native size
    mask = np.asarray(Image.open(unpacked / RELEASE / "test" / "Ground truth" / "1_D.png"))[..., 0]
    assert case.image.shape == (1, 3, H, W) and case.image.dtype == np.float32 and 0 <= case.image.min()
    np.testing.assert_array_equal(case.label[0], mask // 255)
    assert load_data(cfg.__class__(**{**vars(cfg), "root": str(unpacked / RELEASE)}), 0).split == data.split


def test_an_image_without_its_mask_is_refused_by_name(unpacked, tmp_path):
    import shutil

    shutil.copytree(unpacked / RELEASE, tmp_path / "f")
    (tmp_path / "f" / "train" / "Ground truth" / "3_N.png").unlink()
    with pytest.raises(DataError, match=r"3_N\.png.*no mask"):
        load_data(load_config("configs/fives.yaml", [f"data.root={tmp_path / 'f'}"] + TINY).data, 0)


@pytest.mark.parametrize("preset", ["fives.yaml", "fives_supervised.yaml"])
def test_the_fives_presets_train_on_the_release_layout(unpacked, tmp_path, preset):
    cfg = load_config(f"configs/{preset}", [f"data.root={unpacked}", "data.cache=false"] + TINY)
    summary = train(cfg, tmp_path / "run")
    assert 0 <= summary["test"]["dice"]["mean"] <= 1
    assert json.loads((tmp_path / "run" / "split.json").read_text())["dataset"] == "fives"


def copy_of(unpacked, tmp_path):
    import shutil

    shutil.copytree(unpacked / RELEASE, tmp_path / "f")
    return tmp_path / "f"


def fives_cfg(root, *extra):
    return load_config("configs/fives.yaml", [f"data.root={root}", "data.cache=false"] + TINY + list(extra)).data


def test_a_mask_saved_as_0_and_2_is_refused_by_name_not_read_as_empty(unpacked, tmp_path):
    root = copy_of(unpacked, tmp_path)
    path = root / "train" / "Ground truth" / "4_A.png"
    Image.fromarray((np.asarray(Image.open(path))[..., 0] > 0).astype(np.uint8) * 2).save(path)
    with pytest.raises(DataError, match=r"4_A\.png holds values 0\.\.2, neither 0/1 nor 0/255"):
        load_data(fives_cfg(root), 0)


def test_an_rgba_mask_reads_as_it_shows_over_black(unpacked, tmp_path):
    from crossmatch_lite.data.fives import read_mask

    path = unpacked / RELEASE / "train" / "Ground truth" / "1_D.png"
    rgb = np.asarray(Image.open(path))
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "opaque.png"), rgb[..., 0] // 255)
    alpha[:, : W // 2] = 0  # transparent on the left: background there, whatever the colour
    Image.fromarray(np.dstack([np.full_like(rgb, 255), alpha])).save(tmp_path / "half.png")
    assert read_mask(tmp_path / "half.png").sum(axis=0).tolist() == [0] * (W // 2) + [H] * (W - W // 2)


def test_a_truncated_test_photograph_is_refused_when_the_data_load(unpacked, tmp_path):
    root = copy_of(unpacked, tmp_path)
    path = root / "test" / "Original" / "2_G.png"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"test/Original/2_G\.png cannot be read"):
        load_data(fives_cfg(root), 0)


@pytest.mark.parametrize("fault", ["empty", "jpeg"])
def test_an_empty_or_jpeg_test_folder_is_refused_not_scored_as_no_cases(unpacked, tmp_path, fault):
    root = copy_of(unpacked, tmp_path)
    for p in sorted((root / "test" / "Original").iterdir()):
        if fault == "jpeg":
            Image.open(p).save(p.with_suffix(".jpg"))
        p.unlink()
    with pytest.raises(DataError, match="holds no PNG photographs" if fault == "empty" else r"1_D\.jpg.*not PNG"):
        load_data(fives_cfg(root), 0)


@pytest.mark.parametrize("val_count", [60, 2])  # the preset's, and one that fits while data.labeled=30 does not
def test_the_preset_counts_on_a_small_copy_are_refused_with_counts_that_fit(unpacked, val_count):
    cfg = load_config("configs/fives.yaml", [f"data.root={unpacked}", f"data.val_count={val_count}"]).data
    with pytest.raises(DataError, match=rf"data\.val_count={val_count} and data\.labeled=30 do not fit the 8 "
                                        r"training photographs.*--set data\.val_count=1 --set data\.labeled=1$"):
        load_data(cfg, 0)


@pytest.fixture(scope="module")
def sample():
    from sample_data import SAMPLE_DATA

    root = SAMPLE_DATA / "fives-19"
    if not (root / "train" / "Original").is_dir():
        pytest.skip("the 19 real FIVES photographs are not here (set CROSSMATCH_LITE_SAMPLE_DATA)")
    return root


def test_the_real_photographs_load_with_their_rgb_and_rgba_masks(sample):
    from crossmatch_lite.data.fives import pairs, read_mask

    files = pairs(sample)
    assert sum(c.startswith("train/") for c in files) == 13 and sum(c.startswith("test/") for c in files) == 6
    for cid in ("train/28_A", "train/29_A"):  # stored as RGBA
        mask = read_mask(files[cid][1])
        assert mask.shape == (2048, 2048) and set(np.unique(mask)) == {0, 1} and 0.03 < mask.mean() < 0.2
    data = load_data(fives_cfg(sample, "data.labeled=3", "data.size=64"), 0)
    assert data.train_images.shape == (11, 3, 64, 64) and len(data.split["labeled"]) == 3
    assert [c.image.shape for c in data.val_cases] == [(1, 3, 2048, 2048)] * 2 and len(data.test_cases) == 6
