"""Grid files: malformed YAML exits 101 like every usage error, and an
exclusion or baseline naming a value no axis has is refused instead of matching nothing."""
import pytest

from ablations.cli import USAGE_ERROR, main
from ablations.grid import GridError, expand

AXES = {"variant": {"supervised": {"distill.enabled": False}, "crossmatch": {}},
        "seed": {"key": "train.seed", "values": [0, 1]}}


def test_malformed_grid_yaml_exits_101_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("axes:\n  variant: {a: {train.seed: 1}\n  seed: [\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "o"), "--dry-run"]) == USAGE_ERROR
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "not valid YAML" in err


@pytest.mark.parametrize("part", [
    {"exclude": [{"variant": "supervisd"}]},
    {"exclude": [{"variant": ["crossmatch", "crosmatch"]}]},
    {"exclude": [{"seed": 7}]},
    {"baseline": {"variant": "Supervised"}},
])
def test_misspelled_exclude_or_baseline_value_is_refused(part):
    with pytest.raises(GridError, match="is not a value of axis"):
        expand({"axes": AXES, **part}, smoke=False)


def test_correct_exclude_and_baseline_still_work():
    g = expand({"axes": AXES, "exclude": [{"variant": "supervised", "seed": 1}],
                "baseline": {"variant": "supervised"}}, smoke=False)
    assert len(g.cells) == 3 and g.excluded == 1
