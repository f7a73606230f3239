"""Results files drawn for the notebooks: paired differences by seed with t intervals,
labels found in any spelling, and the forest plot leaving out references a file lacks."""
from __future__ import annotations

import json

import pytest

from crossmatch_lite.tutorial.paired import differences, find_label, plot_forest, plot_pairs, rows_of, seed_table

# test Dice per seed; CPU seconds per run
DICE = {"supervised": [70.0, 72.0, 74.0], "`acdc` (CrossMatch)": [80.0, 83.0, 83.0], "image_only": [75.0, 75.0]}


def _grid(tmp_path, dice=DICE):
    lines = [{"kind": "header", "layout": "acdc_cpu", "baseline": "supervised", "about": "test"}]
    for label, values in dice.items():
        for seed, v in enumerate(values):
            lines.append({"kind": "run", "label": label, "seed": seed, "cpu_seconds": 60.0 * (1 + len(label) % 3),
                          "evaluations": {"best_running": {"test_dice": v},
                                          "latest_running": {"test_dice": v - 50}}})
    path = tmp_path / "grid.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_differences_are_paired_by_seed_with_a_t_interval(tmp_path):
    rows = rows_of(_grid(tmp_path))
    d = differences(rows, "supervised").set_index("label")
    cm = d.loc["`acdc` (CrossMatch)"]
    # per seed 10, 11, 9: mean 10, sd 1, half width t(0.975, 2) * 1 / sqrt(3) = 2.4841
    assert cm["per_seed"] == [10.0, 11.0, 9.0] and cm["n"] == 3
    assert cm["mean"] == pytest.approx(10.0) and cm["lo"] == pytest.approx(7.5159, abs=1e-4)
    assert cm["hi"] == pytest.approx(12.4841, abs=1e-4)
    # image_only has seeds 0 and 1 only: paired on those two (5, 3)
    assert d.loc["image_only", "per_seed"] == [5.0, 3.0] and d.loc["image_only", "mean"] == pytest.approx(4.0)
    assert list(d.index) == ["`acdc` (CrossMatch)", "image_only"]  # the reference is not its own row


def test_rows_of_takes_one_evaluation(tmp_path):
    best = seed_table(rows_of(_grid(tmp_path)))
    latest = seed_table(rows_of(_grid(tmp_path), ("latest", "running")))
    assert best["test_dice"].tolist()[:3] == [70.0, 72.0, 74.0]
    assert latest["test_dice"].tolist()[:3] == [20.0, 22.0, 24.0]
    assert best["cpu_minutes"].tolist()[0] == pytest.approx(2.0)  # 120 s


def test_labels_are_found_in_any_spelling(tmp_path):
    rows = rows_of(_grid(tmp_path))
    assert find_label(rows, "crossmatch") == "`acdc` (CrossMatch)"
    assert find_label(rows, "supervised") == "supervised"
    assert find_label(rows, "fixmatch") is None
    with pytest.raises(ValueError, match="no per-seed row 'fixmatch'"):
        differences(rows, "fixmatch")


def test_forest_has_one_panel_per_reference_found_and_the_cost_panel(tmp_path):
    path = _grid(tmp_path)
    fig = plot_forest(path)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["minus `acdc` (CrossMatch)", "minus supervised", "cost and Dice"]
    ticks = dict(zip(fig.axes[1].get_yticks(), [t.get_text() for t in fig.axes[1].get_yticklabels()]))
    assert ticks == {1: "`acdc` (CrossMatch)", 0: "image_only"}  # the file's order, top down
    fig = plot_forest(path, references=("supervised", "unimatch"))  # a reference the file lacks is left out
    assert [ax.get_title() for ax in fig.axes] == ["minus supervised", "cost and Dice"]
    with pytest.raises(ValueError, match="none of the labels"):
        plot_forest(path, references=("unimatch",))


def test_pairs_draw_one_line_per_shared_seed(tmp_path):
    fig = plot_pairs([("toy", _grid(tmp_path), "supervised", "crossmatch")])
    seed_lines = [ln for ln in fig.axes[0].get_lines() if list(ln.get_xdata()) == [0, 1]]
    assert len(seed_lines) == 3
    assert [list(ln.get_ydata()) for ln in seed_lines][1] == [72.0, 83.0]
