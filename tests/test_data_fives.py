"""FIVES reader on a few small RGB photographs written here in the release's layout
(train|test / Original|Ground truth / <n>_<A|D|G|N>.png, masks 0/255 with three channels,
as public FIVES loaders read them), and the FIVES presets trained 2 iterations at toy size."""
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
