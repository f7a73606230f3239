"""`crossmatch-lite predict`: masks for files a run never saw, made by the evaluation path
of the run's scores (the masks of its own test cases are the masks its Dice counted),
written at the input's size with the input's affine, and one line per unusable file."""
import numpy as np
import pytest
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
              "train.val_every=30", "train.lr=0.05", "train.batch_size=4", "model.channels=[8,16,32,64,128]")
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


def test_a_2d_image_given_to_a_3d_run_is_refused(tmp_path, capsys):
    run = tmp_path / "la"
    argv = ["train", "--config", "configs/toy_la.yaml", "--out", str(run)]
    for s in ["train.iterations=2", "train.val_every=2", "train.threads=1", "train.progress=false",
              "eval.distances=false", "train.amp=off"]:
        argv += ["--set", s]
    assert main(argv) == 0
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
        image, _ = read_input(raw[frame], 2)
        np.testing.assert_array_equal(image, case.image)  # the prepared volume, value for value
        assert main(["predict", "--run", str(run), "--input", str(raw[frame]), "--out", str(tmp_path / "out")]) == 0
        mask = np.asanyarray(nib.load(str(tmp_path / "out" / frame)).dataobj).transpose(2, 1, 0)
        np.testing.assert_array_equal(mask, expected[case.id])
