"""Split dicts (crossmatch_lite/data/splitting.py): counts of labeled groups, nested seeded
labeled sets, the four disjoint lists, split files read back, and the checks that keep
val and test out of training."""
import inspect
import json
import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from crossmatch_lite.data import splitting as S
from crossmatch_lite.data.splitting import DataError


def test_labeled_count_accepts_counts_and_fractions_at_their_bounds():
    assert S.labeled_count(3, 10, "d", fraction_ok=False) == 3
    assert S.labeled_count(10, 10, "d", fraction_ok=False) == 10  # all of them: fully supervised
    assert S.labeled_count(1, 10, "d", fraction_ok=False) == 1
    assert S.labeled_count(0.25, 10, "d", fraction_ok=True) == 2  # round(2.5) -> 2, banker's rounding
    assert S.labeled_count(0.35, 10, "d", fraction_ok=True) == 4
    assert S.labeled_count(0.01, 10, "d", fraction_ok=True) == 1  # never zero
    assert S.labeled_count(0.99, 10, "d", fraction_ok=True) == 10


@pytest.mark.parametrize("value, pool, fraction_ok, message", [
    (0, 10, True, r"^d: data.labeled must be positive, got 0$"),
    (-1, 10, True, r"^d: data.labeled must be positive"),
    (0.5, 10, False, r"^d: data.labeled counts patients \(e.g. 1, 3, 7\), got 0.5$"),
    (2.5, 10, True, r"^d: data.labeled must be a whole count or a fraction < 1, got 2.5$"),
    (11, 10, False, r"^d: data.labeled=11 asks for 11 labeled but the training pool has 10; use at most 10 "),
])
def test_labeled_count_refuses_with_the_reason(value, pool, fraction_ok, message):
    with pytest.raises(DataError, match=message):
        S.labeled_count(value, pool, "d", fraction_ok=fraction_ok)


def test_seeded_labeled_sets_are_sorted_nested_and_seeded():
    pool = [f"p{i:02d}" for i in range(20)]
    three, seven = S.seeded_labeled(pool, 3, seed=0), S.seeded_labeled(pool, 7, seed=0)
    assert three == sorted(three) and len(set(three)) == 3 and set(three) < set(seven)
    order = np.random.default_rng(0).permutation(20)
    assert three == sorted(pool[i] for i in order[:3])
    assert S.seeded_labeled(pool, 3, seed=1) != three


def _split(**lists):
    base = {"labeled": ["a"], "unlabeled": ["b"], "val": ["c"], "test": ["d"]}
    return {**base, **lists}


def test_make_split_sorts_every_list_derives_unlabeled_and_keeps_extras():
    split = S.make_split("toy", ["c", "a"], ["d", "c", "b", "a"], ["f", "e"], ["h", "g"], source="x")
    assert split == {"dataset": "toy", "labeled": ["a", "c"], "unlabeled": ["b", "d"], "val": ["e", "f"],
                     "test": ["g", "h"], "source": "x"}


@pytest.mark.parametrize("lists, message", [
    ({"val": ["a"]}, r"^split lists 'labeled' and 'val' share \['a'\]: a group may be in one list only$"),
    ({"test": ["c"]}, r"^split lists 'val' and 'test' share \['c'\]"),
    ({"test": ["b"]}, r"^split lists 'unlabeled' and 'test' share \['b'\]"),
    ({"unlabeled": ["a"]}, r"^split lists 'labeled' and 'unlabeled' share"),
    ({"labeled": []}, r"^split has an empty 'labeled' list: nothing to train on$"),
])
def test_check_split_refuses_a_group_in_two_lists_and_an_empty_labeled_list(lists, message):
    with pytest.raises(DataError, match=message):
        S.check_split(_split(**lists))


def test_check_split_names_at_most_five_shared_groups():
    many = [f"g{i}" for i in range(6)]
    with pytest.raises(DataError, match=r"share \['g0', 'g1', 'g2', 'g3', 'g4'\] \.\.\.: a group"):
        S.check_split(_split(val=many, test=many, labeled=["a"]))
    five = many[:5]
    with pytest.raises(DataError, match=r"share \['g0', 'g1', 'g2', 'g3', 'g4'\]: a group"):
        S.check_split(_split(val=five, test=five))


def test_check_split_names_missing_lists():
    with pytest.raises(DataError, match=r"^split is missing the list\(s\) \['val', 'test'\]; a split needs "
                                        r"\['labeled', 'unlabeled', 'val', 'test'\]$"):
        S.check_split({"labeled": ["a"], "unlabeled": [], "val": "c"})
    S.check_split(_split(unlabeled=[]))  # an empty unlabeled list is a supervised split


def test_read_split_file_sorts_unwraps_and_checks(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"split": {"dataset": "toy", "labeled": [3, 1], "val": ["v"], "test": ["t"],
                                          "note": "kept"}}))
    split = S.read_split_file(path, "toy")
    assert split == {"dataset": "toy", "labeled": ["1", "3"], "unlabeled": [], "val": ["v"], "test": ["t"],
                     "note": "kept"}
    path.write_text(json.dumps({"labeled": ["a"], "val": ["a"]}))
    with pytest.raises(DataError, match="share"):
        S.read_split_file(path, "toy")


@pytest.mark.parametrize("text, message", [
    ("{not json", r"^data.split_file \S+ is not valid JSON: "),
    ("[1, 2]", r"^data.split_file \S+ must hold a JSON object with lists \['labeled', 'unlabeled', 'val', 'test'\]$"),
    ('{"dataset": "acdc", "labeled": ["a"]}', r"^data.split_file \S+ is a split of 'acdc', not of 'toy'$"),
])
def test_read_split_file_refuses_what_it_cannot_use(tmp_path, text, message):
    path = tmp_path / "split.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        S.read_split_file(path, "toy")


def test_read_split_file_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^data.split_file \S+nope.json does not exist$"):
        S.read_split_file(tmp_path / "nope.json", "toy")


def test_keep_present_drops_absent_groups_with_one_warning_naming_them():
    split = _split(labeled=["a", "x"], test=["d", "y"])
    with pytest.warns(UserWarning) as caught:
        kept = S.keep_present(split, {"a", "b", "c", "d"}, "toy", "the folder")
    assert len(caught) == 1
    text = str(caught[0].message)
    assert text == ("toy: some split entries are not in the folder; using those present.\n"
                    "  labeled: 1 missing (x)\n  test: 1 missing (y)")
    assert kept == _split() and split["labeled"] == ["a", "x"]  # the input is not changed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.keep_present(_split(), {"a", "b", "c", "d"}, "toy", "the folder") == _split()


def _reader(split):
    """A dataset reader's one call of keep_present."""
    return S.keep_present(split, {"a"}, "toy", "here")


def test_keep_present_warns_at_the_line_that_asked_for_the_data():
    """stacklevel: the warning points past keep_present and the reader, at their caller."""
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("under mutmut each mutated function gains a trampoline frame, so the warning points into it")
    with pytest.warns(UserWarning) as caught:
        line = inspect.currentframe().f_lineno + 1
        _reader(_split())
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)


def _frames_above(frame) -> list:
    """The stack from `frame` outwards, without the frames of mutmut's trampolines (mutmut
    calls each function it mutates through one, which would shift every stacklevel by one)."""
    frames = []
    while frame is not None:
        if "mutmut" not in Path(frame.f_code.co_filename).parts:
            frames.append(frame)
        frame = frame.f_back
    return frames


def test_keep_present_stacklevel_names_the_frame_that_called_the_reader(monkeypatch):
    """The same stacklevel as the test above, also under mutmut: the frame the warning is
    attributed to (stacklevel 1 = keep_present itself) is the reader's caller, at the call."""
    named = []

    def warn(message, category=UserWarning, stacklevel=1):
        frame = _frames_above(sys._getframe(1))[stacklevel - 1]
        named.append((frame.f_code, frame.f_lineno))

    monkeypatch.setattr(S, "warnings", SimpleNamespace(warn=warn))
    line = inspect.currentframe().f_lineno + 1
    _reader(_split())
    assert named == [(inspect.currentframe().f_code, line)]


@pytest.mark.parametrize("n, listed", [(10, "u0, u1, u2, u3, u4, u5, u6, u7, ... (+2)"),
                                       (8, "u0, u1, u2, u3, u4, u5, u6, u7")])
def test_keep_present_shortens_a_long_list_of_missing_groups(n, listed):
    split = _split(unlabeled=[f"u{i}" for i in range(n)])
    with pytest.warns(UserWarning) as caught:
        S.keep_present(split, {"a", "c", "d"}, "toy", "here")
    assert str(caught[0].message).splitlines()[1] == f"  unlabeled: {n} missing ({listed})"


def test_slice_indices_split_training_slices_by_their_group():
    lab, unl = S.slice_indices(["p1", "p1", "p2", "p3", "p1"], ["p1", "p3"])
    assert lab.tolist() == [0, 1, 3, 4] and unl.tolist() == [2]
    assert lab.dtype == np.int64 and unl.dtype == np.int64


def test_require_finite_counts_bad_values_and_ignores_integers():
    S.require_finite(np.arange(4), "x", "fix")
    S.require_finite(np.ones(3, np.float32), "x", "fix")
    with pytest.raises(DataError, match=r"^x holds 2 non-finite value\(s\) \(NaN or inf\) among 4; fix$"):
        S.require_finite(np.array([1.0, np.nan, np.inf, 0.0]), "x", "fix")
    with pytest.raises(DataError, match=r"^x holds 1 non-finite"):
        S.require_finite(np.array([np.nan, 0.0], np.float32), "x", "fix")  # single precision too


def test_read_id_list_skips_comments_and_blank_lines(tmp_path, monkeypatch):
    (tmp_path / "ids.txt").write_text("# header\na  # first\n\n  b\n#c\nd#tight\n")
    monkeypatch.setattr(S, "_PACKAGE_SPLITS", tmp_path)
    assert S.read_id_list("ids") == ["a", "b", "d"]
