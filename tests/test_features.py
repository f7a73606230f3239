"""Feature perturbation and batching of feature pyramids: channel dropout at the given rate
on every level (also in eval mode), and one decoder call split back per group."""
import pytest
import torch

from crossmatch_lite.features import cat_features, decode_groups, drop_features


@pytest.mark.parametrize("spatial", [(6, 5), (6, 5, 4)])
def test_drop_features_zeroes_whole_channels_and_rescales_the_rest(spatial):
    torch.manual_seed(0)
    feats = [torch.ones(4, 32, *spatial), torch.ones(4, 16, *[s // 2 + 1 for s in spatial])]
    out = drop_features(feats, 0.75)
    assert [o.shape for o in out] == [f.shape for f in feats]
    for o in out:
        per_channel = o.flatten(2)
        # Channel dropout: every channel is all zeros or all 1 / (1 - rate) = 4.
        assert torch.all(per_channel.amin(2) == per_channel.amax(2))
        assert set(per_channel[..., 0].unique().tolist()) == {0.0, 4.0}
    kept = torch.cat([(o.flatten(2)[..., 0] > 0).flatten() for o in out]).float().mean().item()
    assert kept == pytest.approx(0.25, abs=0.1)


def test_drop_features_is_active_in_eval_mode_and_rate_zero_is_the_identity():
    torch.manual_seed(0)
    f = [torch.ones(2, 64, 4, 4)]
    with torch.no_grad():
        assert (drop_features(f, 0.5)[0] == 0).any()
    assert torch.equal(drop_features(f, 0.0)[0], f[0])


def test_cat_features_stacks_each_level_along_the_batch():
    a = [torch.zeros(2, 3, 8, 8), torch.zeros(2, 6, 4, 4)]
    b = [torch.ones(1, 3, 8, 8), torch.ones(1, 6, 4, 4)]
    out = cat_features(a, b)
    assert [o.shape[0] for o in out] == [3, 3]
    assert out[1][:2].sum() == 0 and torch.all(out[1][2] == 1)


class _SumDecoder:
    """decode: each image's first-level features summed over channels, so every output
    shows which input image it came from; counts its calls."""

    def __init__(self):
        self.calls = 0

    def decode(self, feats):
        self.calls += 1
        return feats[0].sum(dim=1, keepdim=True)


def test_decode_groups_is_one_decoder_call_split_back_per_group():
    model = _SumDecoder()
    groups = [[torch.full((2, 3, 4, 4), 1.0)], [torch.full((1, 3, 4, 4), 2.0)], [torch.full((3, 3, 4, 4), 3.0)]]
    outs = decode_groups(model, groups)
    assert model.calls == 1
    assert [o.shape[0] for o in outs] == [2, 1, 3]
    assert [o.unique().tolist() for o in outs] == [[3.0], [6.0], [9.0]]
