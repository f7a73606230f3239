"""CutMix pasting: inside the box the source's values, outside the target's, for images,
class maps and logits, in 2D and 3D."""
import torch

from crossmatch_lite.cutmix import paste


def test_paste_takes_the_source_inside_the_box_and_the_target_outside_2d():
    target = torch.zeros(2, 3, 4, 5)  # (B, C, H, W): H != W != C, so a wrong axis cannot broadcast
    source = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5) + 1
    box = torch.zeros(2, 4, 5)
    box[0, 1:3, 2:5] = 1
    box[1, 0, 0] = 1
    out = paste(target, source, box)
    inside = box.bool()[:, None].expand_as(out)
    assert torch.equal(out[inside], source[inside])
    assert torch.all(out[~inside] == 0)
    assert int(inside.sum()) == 3 * (6 + 1)


def test_paste_of_class_maps_and_of_3d_volumes():
    target = torch.zeros(2, 3, 4, 5, dtype=torch.long)  # (B, X, Y, Z) class ids
    source = torch.full((2, 3, 4, 5), 7, dtype=torch.long)
    box = torch.zeros(2, 3, 4, 5)
    box[1, 2, 3, 4] = 1
    out = paste(target, source, box)
    assert out.sum().item() == 7 and out[1, 2, 3, 4].item() == 7
    logits = paste(torch.zeros(2, 2, 3, 4, 5), torch.ones(2, 2, 3, 4, 5), box)  # (B, K, X, Y, Z)
    assert logits[1, :, 2, 3, 4].tolist() == [1.0, 1.0] and logits.sum().item() == 2.0


def test_an_empty_box_leaves_the_target_unchanged():
    target = torch.rand(2, 1, 6, 6)
    assert torch.equal(paste(target, torch.rand(2, 1, 6, 6), torch.zeros(2, 6, 6)), target)
