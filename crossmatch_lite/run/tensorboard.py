"""TensorBoard event files of a run, written beside metrics.jsonl.

metrics.jsonl stays the record the project reads (summaries, notebooks, the ablation
report); the event files are a live view of the same rows for `tensorboard --logdir`.
The Trainer holds one board and calls it the same way whether train.tensorboard is on
(`Board`) or off (`NoBoard`): off imports nothing, opens no file and renders no picture.

What a board writes, at the iteration of the row as its step:

    train/<key>       every number of a training row: loss, each loss term, lr,
                      conf_thresh, mask_ratio, seconds
    val/dice          the mean val Dice of a validation; val/dice_<class> per class
    val/predictions   one picture per validation: up to PICTURES val slices, one per row,
                      as image | ground truth | prediction (3D: the middle z slice)

A resumed run opens its writer with purge_step = the checkpoint's iteration + 1: TensorBoard
then drops the points past the checkpoint that the interrupted process had written, as
metrics.jsonl is truncated, and the curves continue as one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PICTURES = 4  # val slices per picture: enough to see a trend, small enough to stay cheap
TILE = 128  # pixels of each panel's longer side
# Class colours (background black); distinct under the common colour-vision deficiencies.
PALETTE = np.array([[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66],
                    [0, 114, 178], [213, 94, 0], [204, 121, 167]], dtype=np.uint8)


class NoBoard:
    """TensorBoard off: every call does nothing, and no val prediction is kept for it."""

    picture_ids: frozenset = frozenset()

    def scalars(self, row: dict) -> None:
        pass

    def pictures(self, predictions: dict, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class Board(NoBoard):
    """A SummaryWriter on the run folder, with the val slices it pictures chosen once, so
    every validation shows the same slices."""

    def __init__(self, log_dir: Path, purge_step: int, val_cases: list, three_d: bool):
        # Imported here, not at the top: a run with the board off must not load TensorBoard.
        from torch.utils.tensorboard import SummaryWriter

        # flush_secs: a live `tensorboard` shows new points within half a minute.
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=30)
        self.three_d = three_d
        self.picks = pick_slices(val_cases, PICTURES, three_d)
        self.cases = {case.id: case for case in val_cases}
        self.picture_ids = frozenset(case_id for case_id, _ in self.picks)

    def scalars(self, row: dict) -> None:
        step = row["iteration"]
        for key, value in row.items():
            if key != "iteration" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag_of(key), value, step)

    def pictures(self, predictions: dict, step: int) -> None:
        rows = [render_row(*slice_of(self.cases[case_id], predictions[case_id], z, self.three_d))
                for case_id, z in self.picks if case_id in predictions]
        if rows:
            self.writer.add_image("val/predictions", np.concatenate(rows, axis=0), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def open_board(enabled: bool, log_dir: Path, purge_step: int, val_cases: list, three_d: bool) -> NoBoard:
    return Board(log_dir, purge_step, val_cases, three_d) if enabled else NoBoard()


def tag_of(key: str) -> str:
    """metrics.jsonl key -> TensorBoard tag: val_dice_RV -> val/dice_RV, kd -> train/kd."""
    return "val/" + key[4:] if key.startswith("val_") else "train/" + key


def pick_slices(cases: list, n: int, three_d: bool) -> list[tuple[str, int]]:
    """Up to n (case id, slice index) pairs spread over the cases and, where there are fewer
    cases than n, over the middle of each case (ISIC images have one slice only)."""
    if not cases:
        return []
    chosen = [cases[i] for i in sorted(set(np.linspace(0, len(cases) - 1, min(n, len(cases))).round().astype(int)))]
    per_case = -(-n // len(chosen))
    picks = []
    for case in chosen:
        depth = case.label.shape[-1] if three_d else case.label.shape[0]
        spots = sorted({int(depth * (j + 1) / (per_case + 1)) for j in range(per_case)})
        picks += [(case.id, z) for z in spots]
    return picks[:n]


def slice_of(case, prediction: np.ndarray, z: int, three_d: bool):
    """(image (C, H, W), label (H, W), prediction (H, W)) of slice z of a case."""
    if three_d:  # image (C, X, Y, Z), label and prediction (X, Y, Z)
        return case.image[..., z], case.label[..., z], prediction[..., z]
    return case.image[z], case.label[z], prediction[z]


def render_row(image: np.ndarray, label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """One (TILE + 2, 3 * (TILE + 2), 3) uint8 row: the image (min-max scaled; its first three
    channels, grey repeated), the ground truth and the prediction in PALETTE colours."""
    img = torch.from_numpy(np.asarray(image, dtype=np.float32))
    img = img[:3] if img.shape[0] >= 3 else img[:1].expand(3, -1, -1)
    lo, hi = img.amin(), img.amax()
    img = (img - lo) / (hi - lo) if hi > lo else torch.zeros_like(img)
    panels = [_fit(img, "bilinear")]
    for lab in (label, prediction):
        colours = torch.from_numpy(PALETTE[np.asarray(lab, dtype=np.int64) % len(PALETTE)]).permute(2, 0, 1)
        panels.append(_fit(colours.float() / 255, "nearest"))
    return (torch.cat(panels, dim=2).permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _fit(panel: torch.Tensor, mode: str) -> torch.Tensor:
    """(3, H, W) scaled so its longer side is TILE, keeping the aspect, centred on a TILE
    square, in a one-pixel grey frame (image and label backgrounds are both black)."""
    h, w = panel.shape[1:]
    scale = TILE / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    panel = F.interpolate(panel[None], size=size, mode=mode, **kwargs)[0]
    top, left = (TILE - size[0]) // 2, (TILE - size[1]) // 2
    panel = F.pad(panel, (left, TILE - size[1] - left, top, TILE - size[0] - top))
    return F.pad(panel, (1, 1, 1, 1), value=0.5)
