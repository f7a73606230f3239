"""`crossmatch-lite predict`: masks for files a run never saw, made by the evaluation path
of the run's scores (the masks of its own test cases are the masks its Dice counted),
written at the input's size with the input's affine, and one line per unusable file. No
input and no output of the same call is ever written over, and non-finite or malformed
inputs are refused by name."""
import shutil

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from crossmatch_lite.__main__ import main
from crossmatch_lite.data.folder import write_example_folder
from crossmatch_lite.evaluate import case_scores
from crossmatch_lite.predict import predict_cases
from crossmatch_lite.train import Trainer

nib = pytest.importorskip("nibabel")

TINY = ["data.size=32", "train.batch_size=2", "train.iterations=4", "train.val_every=2", "train.threads=1",
        "train.progress=false", "model.channels=[4,8,16,32,64]", "eval.distances=false"]


def train_cli(out, *sets):
    argv = ["train", "--config", "configs/supervised.yaml", "--out", str(out)]
    for s in [*TINY, *sets]:
        argv += ["--set", s]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def nifti_run(tmp_path_factory):
    root = write_example_folder(tmp_path_factory.mktemp("nifti"), 8, fmt="nifti")
    run = tmp_path_factory.mktemp("runs") / "nifti"
    # Long enough to predict more than one class, so that a mask made another way differs.
    train_cli(run, "data.name=folder", f"data.root={root}", "data.labeled=4", "train.iterations=60",
              "train.val_every=30", "train.lr=0.05", "train.batch_size=4", "model.channels=[8,16,32,64,128]",
              # fp32: bf16 kernels may round a boundary pixel differently for another batch shape
              "train.amp=off")
    return root, run


def test_masks_of_the_runs_own_cases_are_the_ones_its_scores_counted(nifti_run, tmp_path, capsys):
    root, run = nifti_run
    trainer = Trainer.from_run(run)
    cases = trainer.data.test_cases
    expected, dice = predict_cases(trainer, cases)
    assert all(len(np.unique(m)) > 2 for m in expected.values())
    inputs = tmp_path / "in"
    inputs.mkdir()
    for c in cases:
        (inputs / f"{c.id}.nii.gz").symlink_to(root / "images" / f"{c.id}.nii.gz")
    assert main(["predict", "--run", str(run), "--input", str(inputs), "--out", str(tmp_path / "out")]) == 0
    for c in cases:
        written = nib.load(str(tmp_path / "out" / f"{c.id}.nii.gz"))
        source = nib.load(str(root / "images" / f"{c.id}.nii.gz"))
        np.testing.assert_array_equal(written.affine, source.affine)  # opens aligned with the image
        assert written.shape == source.shape and written.get_data_dtype() == np.uint8
        mask = np.transpose(np.asanyarray(written.dataobj), (2, 1, 0))  # (x, y, z) -> (z, y, x)
        np.testing.assert_array_equal(mask, expected[c.id])
        scores = case_scores(mask, c.label, trainer.data.num_classes, c.spacing, distances=False)
        assert np.nanmean(scores["dice"]) == pytest.approx(dice[c.id], abs=1e-6)  # float32 scores
    assert f"{len(cases)} of {len(cases)} file(s) segmented" in capsys.readouterr().out


@pytest.fixture(scope="module")
def png_run(tmp_path_factory):
    """A tiny run on a PNG folder dataset: (its data folder, the run folder)."""
    root = write_example_folder(tmp_path_factory.mktemp("png"), 6)
    run = tmp_path_factory.mktemp("runs") / "png"
    train_cli(run, "data.name=folder", f"data.root={root}", "data.labeled=2")
    return root, run


def test_png_inputs_of_any_size_give_masks_at_their_size(png_run, tmp_path, capsys):
    root, run = png_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.open(root / "images" / "case000.png").resize((50, 70)).save(inputs / "odd.png")
    Image.open(root / "images" / "case001.png").save(inputs / "same.jpg")
    assert main(["predict", "--run", str(run), "--input", str(inputs / "*"), "--out", str(tmp_path / "out"),
                 "--overlay"]) == 0
    odd = np.asarray(Image.open(tmp_path / "out" / "odd.png"))
    assert odd.shape == (70, 50) and odd.dtype == np.uint8 and odd.max() < 4
    assert np.asarray(Image.open(tmp_path / "out" / "same.png")).shape == (96, 96)
    assert np.asarray(Image.open(tmp_path / "out" / "odd_overlay.png")).shape == (70, 50, 3)


def test_unusable_files_are_one_line_each_and_counted_in_the_exit_status(png_run, tmp_path, capsys):
    root, run = png_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.open(root / "images" / "case000.png").save(inputs / "good.png")
    Image.new("RGB", (40, 40), (10, 200, 30)).save(inputs / "colour.png")  # 3 channels, the run has 1
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (inputs / "notes.txt").write_text("not an image")
    vol = nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.float32), np.eye(4))  # a 4D series
    nib.save(vol, str(inputs / "cine.nii.gz"))
    capsys.readouterr()
    assert main(["predict", "--run", str(run), "--input", str(inputs), "--out", str(tmp_path / "out")]) == 4
    out = capsys.readouterr()
    errors = [ln for ln in (out.err + out.out).splitlines() if ln.startswith("error:")]
    assert len(errors) == 4 and "Traceback" not in out.err
    assert any("colour.png: 3 channel(s), but this run was trained on 1" in e for e in errors)
    assert any("broken.png" in e for e in errors) and any("notes.txt" in e for e in errors)
    assert any("cine.nii.gz" in e and "4D" in e for e in errors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]  # nothing half-written


@pytest.fixture(scope="module")
def la_run(tmp_path_factory):
    """A tiny 3D run (toy_la, V-Net)."""
    run = tmp_path_factory.mktemp("runs") / "la"
    argv = ["train", "--config", "configs/toy_la.yaml", "--out", str(run)]
    for s in ["train.iterations=2", "train.val_every=2", "train.threads=1", "train.progress=false",
              "eval.distances=false", "train.amp=off"]:
        argv += ["--set", s]
    assert main(argv) == 0
    return run


def test_a_2d_image_given_to_a_3d_run_is_refused(la_run, tmp_path, capsys):
    run = la_run
    Image.new("L", (32, 32)).save(tmp_path / "slice.png")
    capsys.readouterr()
    assert main(["predict", "--run", str(run), "--input", str(tmp_path / "slice.png"), "--out",
                 str(tmp_path / "out")]) == 1
    assert "a 2D image, but this run segments 3D volumes" in capsys.readouterr().err


def test_acdc_nifti_frames_give_the_masks_evaluate_scored(tmp_path, capsys):
    """ACDC as a user has it: the official zip converted by data_download, a run trained on
    the prepared volumes, then predict on the raw NIfTI frames of a test patient. The input
    is the prepared volume value for value, so the masks are the ones evaluate scored."""
    import json

    import conftest_download as H
    from data_download.__main__ import main as download

    from crossmatch_lite.dims import Dims
    from crossmatch_lite.predict import read_input

    truth = H.make_acdc_zip(tmp_path / "ACDC.zip", patients=(1, 2, 3), testing=(101,))
    H.acdc_www(tmp_path / "www", tmp_path / "ACDC.zip")
    server = H.Server(tmp_path / "www")
    try:
        assert download(["acdc", "--dest", str(tmp_path / "ACDC"), "--mirror", server.url, "--quiet",
                         "--backoff", "0"]) == 0
    finally:
        server.close()
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"labeled": ["patient001"], "unlabeled": ["patient002"], "val": ["patient003"],
                                 "test": ["patient101"]}))
    run = tmp_path / "run"
    train_cli(run, "data.name=acdc", f"data.root={tmp_path / 'ACDC'}", f"data.split_file={split}", "data.size=16")
    trainer = Trainer.from_run(run)
    expected, _ = predict_cases(trainer, trainer.data.test_cases)
    raw = {p.name: p for p in (tmp_path / "ACDC").rglob("patient101_frame*.nii.gz") if "_gt" not in p.name}
    assert len(raw) == 2 and len(truth["patient101"]) == 2
    for case in trainer.data.test_cases:  # frame01 is ED, frame02 the ES frame, whatever its number
        frame = sorted(raw)[0 if case.id.endswith("frame01") else 1]
        image, _ = read_input(raw[frame], Dims(2))
        np.testing.assert_array_equal(image, case.image)  # the prepared volume, value for value
        assert main(["predict", "--run", str(run), "--input", str(raw[frame]), "--out", str(tmp_path / "out")]) == 0
        mask = np.asanyarray(nib.load(str(tmp_path / "out" / frame)).dataobj).transpose(2, 1, 0)
        np.testing.assert_array_equal(mask, expected[case.id])



def errors_of(capsys) -> list[str]:
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return [ln for ln in (out.err + out.out).splitlines() if ln.startswith("error:")]


def test_out_equal_to_input_never_writes_over_the_inputs(png_run, tmp_path, capsys):
    root, run = png_run
    shutil.copy(root / "images" / "case000.png", tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    capsys.readouterr()
    assert main(["predict", "--run", str(run), "--input", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert (tmp_path / "a.png").read_bytes() == before
    [line] = errors_of(capsys)
    assert "a.png would overwrite the input" in line


def test_inputs_whose_outputs_share_a_name_are_refused_not_overwritten(png_run, tmp_path, capsys):
    root, run = png_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = Image.open(root / "images" / "case000.png")
    for name in ("dup.png", "dup.jpg", "x.png", "x_overlay.png"):
        image.save(inputs / name)
    volume = np.asarray(image, np.float32)[None]  # (z, y, x): one slice
    write_h5(inputs / "v.h5", volume)
    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), np.eye(4)), str(inputs / "v.nii.gz"))
    capsys.readouterr()
    assert main(["predict", "--run", str(run), "--input", str(inputs), "--out", str(tmp_path / "out"),
                 "--overlay"]) == 3
    out = capsys.readouterr()
    assert "3 of 6 file(s) segmented" in out.out and "Traceback" not in out.err
    refused = [ln for ln in out.err.splitlines() if ln.startswith("error:")]
    # Sorted order: dup.jpg claims dup.png first; v.h5 claims v.nii.gz; x.png claims
    # x_overlay.png for its overlay.
    assert len(refused) == 3 and all("also the output of" in e for e in refused)
    assert "dup.png: its output" in refused[0] and "v.nii.gz: its output" in refused[1]
    assert "x_overlay.png: its output" in refused[2] and "x.png" in refused[2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dup.png", "dup_overlay.png", "v.nii.gz",
                                                                   "x.png", "x_overlay.png"]
    assert np.asarray(Image.open(tmp_path / "out" / "x_overlay.png")).shape == (96, 96, 3)  # x's overlay


def test_an_out_that_cannot_be_written_is_refused_once_before_any_file(png_run, tmp_path, capsys):
    root, run = png_run
    (tmp_path / "file").write_text("not a folder")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        capsys.readouterr()
        assert main(["predict", "--run", str(run), "--input", str(root / "images"), "--out", str(out)]) == 2
        [line] = errors_of(capsys)
        assert f"--out {out} cannot be used as the folder for the masks" in line
    assert (tmp_path / "file").read_text() == "not a folder"


def write_h5(path, image, **attrs):
    with h5py.File(path, "w") as f:
        f["image"] = image
        f.attrs.update(attrs)


def test_non_finite_volumes_are_refused_in_2d_and_3d_runs(png_run, la_run, tmp_path, capsys):
    _, run2 = png_run
    vol = np.random.default_rng(0).standard_normal((40, 40, 24)).astype(np.float32)
    vol[3, 4, 5] = np.nan
    (tmp_path / "in3").mkdir()
    nib.save(nib.Nifti1Image(vol, np.diag([1.25, 1.25, 2.5, 1])), str(tmp_path / "in3" / "onenan.nii.gz"))
    write_h5(tmp_path / "in3" / "nan.h5", vol)
    (tmp_path / "in2").mkdir()
    write_h5(tmp_path / "in2" / "nan.h5", vol.transpose(2, 1, 0))
    write_h5(tmp_path / "in2" / "allnan.h5", np.full((2, 16, 16), np.nan, np.float32))
    capsys.readouterr()
    for run, inputs in ((la_run, "in3"), (run2, "in2")):
        assert main(["predict", "--run", str(run), "--input", str(tmp_path / inputs), "--out",
                     str(tmp_path / f"{inputs}_out")]) == 2
        errors = errors_of(capsys)
        assert len(errors) == 2 and all("non-finite value(s)" in e for e in errors), errors
        assert any("nan.h5 holds 1 non-finite value(s) (NaN or inf) among 38400" in e for e in errors)
        assert not list((tmp_path / f"{inputs}_out").iterdir())


@pytest.mark.parametrize("make, words", [
    (lambda f: f.create_group("image"), "its `image` is a group, not an array"),
    (lambda f: f.create_dataset("image", data=np.zeros((8, 8), np.float32)), "shape (8, 8)"),
    (lambda f: f.create_dataset("image", data=np.array([[[b"ab"]]])), "|S2 of shape (1, 1, 1)"),
    (lambda f: f.create_dataset("image", data=np.zeros((0, 8, 8), np.float32)), "non-empty 3D array"),
    (lambda f: (f.create_dataset("image", data=np.zeros((16, 16, 8), np.float32)),
                f.attrs.update({"spacing": np.ones((4, 4))})), "`spacing` attribute is"),
    (lambda f: None, "its `image` is missing"),
])
def test_malformed_hdf5_inputs_are_one_line_naming_what_is_wrong(la_run, tmp_path, capsys, make, words):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        make(f)
    capsys.readouterr()
    assert main(["predict", "--run", str(la_run), "--input", str(tmp_path / "bad.h5"), "--out",
                 str(tmp_path / "out")]) == 1
    [line] = errors_of(capsys)
    assert "bad.h5" in line and words in line, line
    assert not list((tmp_path / "out").iterdir())


def test_hdf5_spacing_follows_the_array_axes(png_run, la_run, tmp_path, capsys):
    """2D runs read (z, y, x) arrays, 3D runs (x, y, z); the mask's affine is (x, y, z)."""
    vol = np.random.default_rng(1).standard_normal((24, 20, 16)).astype(np.float32)
    for run, name in ((la_run, "xyz.h5"), (png_run[1], "zyx.h5")):
        write_h5(tmp_path / name, vol, spacing=[1.0, 2.0, 3.0])
        assert main(["predict", "--run", str(run), "--input", str(tmp_path / name), "--out",
                     str(tmp_path / "out")]) == 0
    affine = {n: np.diag(nib.load(str(tmp_path / "out" / f"{n}.nii.gz")).affine)[:3] for n in ("xyz", "zyx")}
    np.testing.assert_array_equal(affine["xyz"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(affine["zyx"], [3.0, 2.0, 1.0])


def test_odd_but_valid_nifti_and_truncated_files_are_worded_for_predict(la_run, tmp_path, capsys):
    vol = np.random.default_rng(2).standard_normal((24, 24, 16, 1)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "oneframe.nii.gz"))
    (tmp_path / "cut.nii.gz").write_bytes((tmp_path / "oneframe.nii.gz").read_bytes()[:200])
    capsys.readouterr()
    assert main(["predict", "--run", str(la_run), "--input", str(tmp_path / "*.nii.gz"), "--out",
                 str(tmp_path / "out")]) == 1
    [line] = errors_of(capsys)
    assert "cut.nii.gz cannot be read" in line and "truncated" in line and "remove the case" not in line
    assert nib.load(str(tmp_path / "out" / "oneframe.nii.gz")).shape == (24, 24, 16)


def test_a_checkpoint_of_another_network_is_one_line(png_run, la_run, tmp_path, capsys):
    _, run = png_run
    for source, words in ((la_run, "does not fit this run's network (unet)"),
                          (None, "was trained with another data or model config")):
        copy = tmp_path / f"run{words[:4]}"
        shutil.copytree(run, copy)
        if source is not None:  # a V-Net's weights, without the config that would name them
            state = torch.load(source / "best.pt", weights_only=True)
            torch.save({"model": state["model"]}, copy / "best.pt")
        else:  # the same network, another run's config (another dataset): refused, not used silently
            cfg = (copy / "config.yaml").read_text()
            (copy / "config.yaml").write_text(cfg.replace("name: folder", "name: toy_acdc"))
        Image.new("L", (32, 32)).save(tmp_path / "slice.png")
        capsys.readouterr()
        assert main(["predict", "--run", str(copy), "--input", str(tmp_path / "slice.png"), "--out",
                     str(tmp_path / "o"), "--bn", "running"]) == 2
        [line] = errors_of(capsys)
        assert words in line, line
