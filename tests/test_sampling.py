"""The epoch sampler: every index once per epoch, batches that run across epochs, and a
state that resumes the exact sequence (what an exact resume of training rests on)."""
import numpy as np
import pytest

from crossmatch_lite.run.sampling import EpochSampler


def test_each_epoch_is_a_permutation_and_batches_cross_epochs():
    idx = np.array([3, 5, 7, 11, 13])
    s = EpochSampler(idx, batch=2, seed=0)
    drawn = np.concatenate([s.next() for _ in range(10)])  # 20 draws: four whole epochs
    for epoch in drawn.reshape(4, 5):
        assert sorted(epoch) == sorted(idx)


def test_a_restored_state_continues_the_same_sequence():
    a = EpochSampler(np.arange(7), batch=3, seed=4)
    for _ in range(5):
        a.next()
    b = EpochSampler(np.arange(7), batch=3, seed=99)
    b.load_state_dict(a.state_dict())
    assert [a.next().tolist() for _ in range(6)] == [b.next().tolist() for _ in range(6)]


def test_an_empty_pool_or_batch_is_refused():
    with pytest.raises(ValueError, match="no training images"):
        EpochSampler(np.array([], dtype=np.int64), 2, 0)
    with pytest.raises(ValueError, match="at least 1"):
        EpochSampler(np.arange(3), 0, 0)
