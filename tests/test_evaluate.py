"""Surface distances as defined in docs/training.md: MONAI's pooled symmetric ASD, empty cases
counted and, in the penalised figures, scored as the image diagonal. Predictions are those
of the model in eval mode (running BatchNorm statistics, no dropout), whatever mode it is
handed in: the same on every call, equal to one whole-input forward pass where a single
window covers the volume, and the running statistics are left untouched. Whole cases
(evaluate_cases): per-case and mean scores of a model whose prediction is known pixel by
pixel, the predictions kept for the cases asked for, and the window steps MONAI is handed."""
import copy
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from crossmatch_lite.data.base import Case
from crossmatch_lite.evaluate import case_scores, predict_case, predict_volume, summarise
from crossmatch_lite.models.unet import UNet
from crossmatch_lite.models.vnet import VNet


def _edges(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask & ~ndimage.binary_erosion(mask))


def _directed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each edge point of a, the distance to the nearest edge point of b (brute force)."""
    pa, pb = _edges(a), _edges(b)
    return np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)).min(axis=1)


def two_squares():
    label = np.zeros((1, 24, 24), np.uint8)
    pred = np.zeros_like(label)
    label[0, 4:8, 4:8] = 1  # a small square ...
    pred[0, 3:17, 3:17] = 1  # ... inside a large one: the two edge sets differ in size
    return pred, label


def test_asd_pools_both_directions():
    pred, label = two_squares()
    d_pl, d_lp = _directed(pred[0] == 1, label[0] == 1), _directed(label[0] == 1, pred[0] == 1)
    pooled = np.concatenate([d_pl, d_lp]).mean()
    mean_of_means = (d_pl.mean() + d_lp.mean()) / 2
    assert abs(pooled - mean_of_means) > 1.0  # the two definitions really differ here
    s = case_scores(pred, label, 2, spacing=None)
    assert s["asd_vox"][0] == pytest.approx(pooled, rel=1e-5)
    # HD95: the larger of the two directed 95th percentiles (not the 96th: they differ here).
    assert np.percentile(d_pl, 96) != pytest.approx(np.percentile(d_pl, 95), rel=1e-3)
    assert s["hd95_vox"][0] == pytest.approx(max(np.percentile(d_pl, 95), np.percentile(d_lp, 95)), rel=1e-5)
    assert "hd95_mm" not in s and "asd_mm_pen" not in s  # no spacing, no millimetres


def test_empty_prediction_is_counted_and_penalised_with_the_diagonal():
    label = np.zeros((3, 20, 30), np.uint8)
    label[:, 5:10, 5:12] = 1
    label[:, 12:16, 15:25] = 2
    pred = np.where(label == 2, 0, label).astype(np.uint8)  # class 2 missed entirely
    spacing = (10.0, 1.5, 2.0)
    s = case_scores(pred, label, 3, spacing=spacing)
    assert s["empty"].tolist() == [0.0, 1.0]
    assert s["hd95_mm"][0] == pytest.approx(0.0) and np.isnan(s["hd95_mm"][1])
    diagonal_mm = np.sqrt((3 * 10.0) ** 2 + (20 * 1.5) ** 2 + (30 * 2.0) ** 2)
    assert s["hd95_mm_pen"][1] == pytest.approx(diagonal_mm) and s["asd_mm_pen"][1] == pytest.approx(diagonal_mm)
    assert s["hd95_vox_pen"][1] == pytest.approx(np.sqrt(3 ** 2 + 20 ** 2 + 30 ** 2))
    summary = summarise([{"scores": s}, {"scores": case_scores(label, label, 3, spacing=spacing)}], ["bg", "a", "b"])
    assert summary["n_empty"] == 1 and summary["n_empty_per_class"] == {"a": 0, "b": 1}
    assert summary["hd95_mm"]["b"] == pytest.approx(0.0)  # without the empty case: flattering
    assert summary["hd95_mm_pen"]["b"] == pytest.approx(diagonal_mm / 2)


def test_a_2d_image_is_scored_in_2d_with_the_in_plane_spacing():
    """An image (1, H, W) is scored in 2D, in mm with the last two entries of its spacing:
    a row missed along H (2 mm a pixel) is 1 pixel and 2 mm away."""
    label = np.zeros((1, 12, 12), np.uint8)
    label[0, 3:9, 3:9] = 1
    pred = label.copy()
    pred[0, 8] = 0
    s = case_scores(pred, label, 2, spacing=(7.0, 2.0, 0.5))
    assert s["hd95_vox"][0] == pytest.approx(1.0) and s["hd95_mm"][0] == pytest.approx(2.0)
    assert s["hd95_mm_pen"][0] == pytest.approx(2.0)
    # ASD pools the edge-to-edge distances of both directions, measured in mm.
    edges = [_edges(m[0] == 1) * np.array([2.0, 0.5]) for m in (pred, label)]
    d = [np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min(1) for a, b in (edges, edges[::-1])]
    assert s["asd_mm"][0] == pytest.approx(np.concatenate(d).mean(), rel=1e-5)
    assert s["asd_mm"][0] != pytest.approx(s["asd_vox"][0], rel=1e-2)


def test_both_empty_is_neither_counted_nor_penalised():
    label = np.zeros((2, 16, 16), np.uint8)
    label[:, 4:9, 4:9] = 1
    s = case_scores(label, label, 3, spacing=None)  # class 2 absent from both
    assert s["empty"].tolist() == [0.0, 0.0] and np.isnan(s["hd95_vox_pen"][1])


def test_isotropic_mm_distances_equal_monais_own():
    """For isotropic voxels the mm distances are the voxel ones scaled, not a second KD-tree
    pass: they must still equal what MONAI computes with the spacing given."""
    import torch.nn.functional as F
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    label = np.zeros((30, 30, 20), np.uint8)
    label[5:20, 8:22, 4:15] = 1
    pred = np.zeros_like(label)
    pred[6:21, 8:24, 5:15] = 1
    pred[25, 25, 2] = 1
    sp = (0.625, 0.625, 0.625)
    s = case_scores(pred, label, 2, sp)
    p, y = (F.one_hot(torch.from_numpy(v.astype(np.int64)), 2).movedim(-1, 0)[None].float() for v in (pred, label))
    hd = compute_hausdorff_distance(p, y, include_background=False, percentile=95, spacing=sp)[0].numpy()
    asd = compute_average_surface_distance(p, y, include_background=False, symmetric=True, spacing=sp)[0].numpy()
    assert s["hd95_mm"] == pytest.approx(hd, rel=1e-6) and s["asd_mm"] == pytest.approx(asd, rel=1e-6)
    assert s["hd95_mm"] != pytest.approx(s["hd95_vox"])  # scaled, not copied


def test_class_absent_from_both_is_left_out_of_the_dice_mean():
    """A class neither predicted nor labelled in a case is no perfect score: that pair is left
    out of the means (as MONAI's ignore_empty=True does); a false alarm still scores 0."""
    label = np.zeros((1, 16, 16), np.uint8)
    label[0, 2:6, 2:6] = 1
    label[0, 8:12, 8:16] = 2
    pred = label.copy()
    pred[0, 8:12, 12:16] = 0  # class 2 half found: Dice 2/3
    only_a = np.where(label == 2, 0, label).astype(np.uint8)  # class 2 in neither
    s = case_scores(only_a, only_a, 3, spacing=None, distances=False)
    assert s["dice"][0] == pytest.approx(1.0) and np.isnan(s["dice"][1]) and np.isnan(s["jaccard"][1])
    summary = summarise([{"scores": case_scores(pred, label, 3, None, distances=False)}, {"scores": s}],
                        ["bg", "a", "b"])
    assert summary["dice"]["b"] == pytest.approx(2 / 3)  # not (2/3 + 1) / 2
    assert summary["dice"]["mean"] == pytest.approx((1 + 2 / 3) / 2)
    false_alarm = case_scores(label, only_a, 3, spacing=None, distances=False)
    assert false_alarm["dice"][1] == 0.0 and false_alarm["jaccard"][1] == 0.0
    # A class no case has: its mean is over nothing, None like every other undefined mean.
    empty = summarise([{"scores": s}], ["bg", "a", "b"])
    assert empty["dice"]["b"] is None and empty["dice"]["mean"] == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a mean over nothing is None, without numpy's warning
        nothing = summarise([{"scores": case_scores(0 * label, 0 * label, 3, None, distances=False)}],
                            ["bg", "a", "b"])
    assert nothing["dice"] == {"a": None, "b": None, "mean": None}


# ------------------------------------------------------------------ predictions
def with_running_statistics(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every BatchNorm given running statistics unlike any batch's own, so that a pass with
    batch statistics (train mode) predicts visibly differently from one in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
            m.num_batches_tracked.fill_(100)
    return model


def tiny_vnet() -> VNet:
    torch.manual_seed(0)
    net = VNet(channels=(2, 4, 8, 16, 32), encoder_dropout=(0, 0, 0, 0, 0.5), head_dropout=0.5)
    return with_running_statistics(net, 1)


def tiny_unet() -> UNet:
    torch.manual_seed(0)
    return with_running_statistics(UNet(1, 4, [4, 8, 16, 32, 64]), 1)  # dropout 0.05 .. 0.5


@pytest.mark.parametrize("dims", [2, 3])
def test_prediction_is_the_eval_mode_forward_whatever_mode_the_model_is_in(dims):
    g = torch.Generator().manual_seed(2)
    if dims == 3:
        # A volume exactly the patch: MONAI's sliding window runs one window, the whole
        # volume, and its averaging divides by one, so the result is the plain forward pass.
        model, patch = tiny_vnet(), (32, 32, 16)
        image = torch.randn(1, 1, *patch, generator=g)
        case = Case("v", image[0].numpy(), np.zeros(patch, np.uint8), None)
        predict = lambda m: predict_volume(m, case, patch, (4, 4, 4), 1, torch.device("cpu"))  # noqa: E731
    else:
        # Slices already at the training size, all in one forward pass: both resizes are
        # the identity, and the pass is the whole-input one.
        model, size = tiny_unet(), 32
        image = torch.randn(3, 1, size, size, generator=g)
        case = Case("s", image.numpy(), np.zeros((3, size, size), np.uint8), None)
        predict = lambda m: predict_case(m, case, size, torch.device("cpu"))  # noqa: E731
    head = model.out_conv if dims == 3 else model.head
    with torch.no_grad():
        # Centre the output bias on this input, so that the classes share the prediction
        # and an argmax shows any change of the logits.
        logits = copy.deepcopy(model).eval()(image)
        head.bias.sub_(logits.mean(dim=[0] + list(range(2, logits.dim()))))
        expected = copy.deepcopy(model).eval()(image).argmax(1)
        torch.manual_seed(3)
        in_train_mode = copy.deepcopy(model).train()(image).argmax(1)
    expected = expected[0] if dims == 3 else expected
    in_train_mode = in_train_mode[0] if dims == 3 else in_train_mode
    # The check has power: the classes are mixed, and train mode predicts otherwise.
    assert torch.bincount(expected.flatten()).max() < 0.9 * expected.numel()
    assert (in_train_mode != expected).float().mean() > 0.05
    before = copy.deepcopy(model.state_dict())

    model.train()
    torch.manual_seed(4)
    first = predict(model)
    model.train()
    torch.manual_seed(5)
    second = predict(model)
    assert np.array_equal(first, second)  # no dropout, no batch statistics
    assert np.array_equal(first, expected.numpy().astype(np.uint8))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics not moved


def test_a_window_step_of_the_whole_patch_tiles_without_overlap():
    """eval.stride == data.patch: windows side by side (MONAI refuses a negative overlap)."""
    from crossmatch_lite.evaluate import window_overlap

    assert window_overlap((16, 16, 8), (16, 16, 8)) == [0.0, 0.0, 0.0]
    net = VNet(1, 2, channels=(2, 4, 8, 16, 32), head_dropout=0.0).eval()
    case = Case("v", np.random.default_rng(0).random((1, 32, 32, 16), dtype=np.float32), np.zeros((32, 32, 16), np.uint8), None)
    pred = predict_volume(net, case, (16, 16, 16), (16, 16, 16), 1, torch.device("cpu"))
    assert pred.shape == (32, 32, 16)


# ------------------------------------------------------------------ whole cases
class _Bright(torch.nn.Module):
    """Logits (B, 2, *spatial) that predict class 1 exactly where the image exceeds 0.5."""

    def forward(self, x):
        return torch.cat([0.5 - x, x - 0.5], 1)


def _square_case(case_id, found_rows):
    """Two 8x8 slices labelled with a 4x4 square; the image is bright on `found_rows` of
    its rows, so the prediction finds found_rows x 4 of the 16 pixels."""
    label = np.zeros((2, 8, 8), np.uint8)
    label[:, 2:6, 2:6] = 1
    image = np.zeros((2, 1, 8, 8), np.float32)
    image[:, 0, 2:2 + found_rows, 2:6] = 1.0
    return Case(case_id, image, label, (2.0, 1.0, 1.0))


@pytest.mark.parametrize("keep", [False, True, ("b",)])
def test_evaluate_cases_scores_each_case_and_keeps_the_predictions_asked_for(keep):
    """2D cases at the training size: Dice and Jaccard per case and their mean, one entry
    per case in `cases`, the distances only when asked (in mm with the case's spacing),
    and the predictions of exactly the cases `keep_predictions` names."""
    from crossmatch_lite.evaluate import evaluate_cases

    cases = [_square_case("a", 3), _square_case("b", 4)]
    out = evaluate_cases(_Bright(), cases, 2, ["bg", "sq"], 8, torch.device("cpu"), distances=False,
                         batch=1, keep_predictions=keep)
    dice_a = 2 * 24 / (24 + 32)  # 12 of 16 pixels found, on each of the two slices
    assert out["n_cases"] == 2
    assert out["dice"]["sq"] == pytest.approx((dice_a + 1) / 2) and out["dice"]["mean"] == out["dice"]["sq"]
    assert out["jaccard"]["mean"] == pytest.approx((0.75 + 1) / 2)
    assert [c["id"] for c in out["cases"]] == ["a", "b"]
    assert out["cases"][0]["dice"] == {"sq": pytest.approx(dice_a)} and out["cases"][1]["jaccard"] == {"sq": 1.0}
    assert set(out["cases"][0]) == {"id", "dice", "jaccard"} and "hd95_vox" not in out
    kept = {"a", "b"} if keep is True else set(keep or ())
    if not keep:
        assert "_predictions" not in out
    else:
        assert set(out["_predictions"]) == kept
        for c in cases:
            if c.id in kept:
                assert np.array_equal(out["_predictions"][c.id], c.image[:, 0] > 0.5)
    with_distances = evaluate_cases(_Bright(), cases, 2, ["bg", "sq"], 8, torch.device("cpu"))
    # Case a misses the square's last row, 1 voxel (1 mm, along y) from the found part: HD95 1;
    # case b 0.
    assert with_distances["n_empty"] == 0 and with_distances["hd95_vox"]["sq"] == pytest.approx(0.5)
    assert with_distances["hd95_mm"]["sq"] == pytest.approx(0.5)
    assert with_distances["dice"] == out["dice"] and "_predictions" not in with_distances


class _SaysBf16(torch.nn.Module):
    """Predicts class 1 everywhere when its convolution runs under bf16 autocast, else 0."""

    def __init__(self, dims):
        super().__init__()
        self.conv = (torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d)(1, 1, 1)

    def forward(self, x):
        bf16 = self.conv(x).dtype == torch.bfloat16
        ones, zeros = torch.ones_like(x), torch.zeros_like(x)
        return torch.cat([zeros, ones] if bf16 else [ones, zeros], 1).float()


@pytest.mark.parametrize("dims", [2, 3])
def test_evaluate_cases_predicts_under_the_autocast_it_is_handed(dims):
    from crossmatch_lite.evaluate import evaluate_cases

    if dims == 2:
        case, window = _square_case("a", 4), None
    else:
        case = Case("v", np.zeros((1, 8, 8, 4), np.float32), np.zeros((8, 8, 4), np.uint8), None)
        window = {"patch": (4, 4, 4), "stride": (4, 4, 4), "downsample": 1}
    for autocast, expected in ((torch.autocast("cpu", dtype=torch.bfloat16), 1), (None, 0)):
        out = evaluate_cases(_SaysBf16(dims), [case], 2, ["bg", "fg"], 8, torch.device("cpu"), distances=False,
                             autocast=autocast, keep_predictions=True, window=window)
        assert np.all(out["_predictions"][case.id] == expected), autocast


def test_evaluate_cases_slides_the_window_over_3d_cases():
    """`window` sends a case through the sliding window (patch, stride, downsample): the
    pointwise model's prediction is the same wherever the windows overlap."""
    from crossmatch_lite.evaluate import evaluate_cases

    g = np.random.default_rng(0)
    image = g.random((1, 8, 8, 4), dtype=np.float32)
    label = (image[0] > 0.5).astype(np.uint8)
    label[0] = 0  # one slab missed by the label: false alarms there
    case = Case("v", image, label, (1.0, 1.0, 1.0))
    out = evaluate_cases(_Bright(), [case], 2, ["bg", "fg"], 0, torch.device("cpu"), distances=False,
                         keep_predictions=True, window={"patch": (4, 4, 4), "stride": (2, 2, 2), "downsample": 1})
    pred = out["_predictions"]["v"]
    assert pred.shape == (8, 8, 4) and np.array_equal(pred, image[0] > 0.5)
    tp, fp = int(label.sum()), int((image[0, 0] > 0.5).sum())
    assert out["dice"]["fg"] == pytest.approx(2 * tp / (2 * tp + fp))


def test_window_overlap_makes_monai_step_by_the_stride():
    """MONAI steps a window by int(roi * (1 - overlap)): the overlap handed to it gives
    steps of exactly the stride, and none below zero."""
    from crossmatch_lite.evaluate import window_overlap

    patch, stride = (112, 112, 80), (18, 18, 4)  # the official LA window
    overlap = window_overlap(patch, stride)
    assert [int(p * (1 - o)) for p, o in zip(patch, overlap)] == list(stride)
    assert overlap == pytest.approx([1 - 18.5 / 112, 1 - 18.5 / 112, 1 - 4.5 / 80])
    assert window_overlap((4, 8), (5, 4)) == [0.0, pytest.approx(1 - 4.5 / 8)]  # a step past the window: 0
