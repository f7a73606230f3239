"""docs/results.md's tables against their results files, and runs feeding those files."""
import json
import shutil
from pathlib import Path

import pytest

from crossmatch_lite.config import load_config, save_config
from crossmatch_lite.tutorial import results as R

ROOT = Path(__file__).resolve().parents[1]


def test_every_table_of_results_md_matches_its_results_file():
    text = (ROOT / "docs/results.md").read_text()
    files = [m["file"] for m in R.MARKER.finditer(text)]
    assert files == ["results/quick_grid.jsonl", "results/isic_grid.jsonl", "results/acdc_grid.jsonl",
                     "results/acdc_cpu.jsonl", "results/la_cpu.jsonl", "results/isic_cpu.jsonl",
                     "results/isic_budget.jsonl", "results/fives_sample.jsonl"]
    assert R.stale_tables(ROOT / "docs/results.md") == [], \
        "docs/results.md is stale: run `python -m crossmatch_lite.tutorial.results render --write`"


def test_readme_results_table_is_rendered_from_the_results_files(tmp_path):
    text = (ROOT / "README.md").read_text()
    assert [m["file"] for m in R.MARKER.finditer(text)] == ["docs/results/summary.yaml"]
    assert R.stale_tables(ROOT / "README.md") == [], \
        "README.md is stale: run `python -m crossmatch_lite.tutorial.results render --write`"
    # A changed run in a results file makes README's table stale, and render fixes it.
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs/results", tmp_path / "docs/results")
    path = tmp_path / "docs/results/isic_cpu.jsonl"
    lines = path.read_text().splitlines()
    row = next(i for i, ln in enumerate(lines) if '"label": "`isic_cpu` (CrossMatch), 10 %", "config"' in ln)
    rec = json.loads(lines[row])
    before = rec["evaluations"]["best_running"]["test_dice"]
    rec["evaluations"]["best_running"]["test_dice"] = before + 3.0  # one of three seeds: the mean moves 1.0
    lines[row] = json.dumps(rec, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n")
    assert R.stale_tables(tmp_path / "README.md") == ["docs/results/summary.yaml"]
    assert R.main(["render", "--write", "--doc", str(tmp_path / "README.md")]) == 0
    assert "| 82.5 ± 0.6 | **85.7 ± " in (tmp_path / "README.md").read_text()


def test_a_summary_naming_a_missing_row_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "docs/results").mkdir(parents=True)
    shutil.copy(ROOT / "docs/results/isic_cpu.jsonl", tmp_path / "docs/results/isic_cpu.jsonl")
    (tmp_path / "docs/results/summary.yaml").write_text(
        "- {row: r, file: isic_cpu.jsonl, evaluation: [best, running], hardware: h,\n"
        "   supervised: nobody, crossmatch: '`isic_cpu` (CrossMatch), 5 %'}\n")
    (tmp_path / "README.md").write_text("<!-- results: docs/results/summary.yaml -->\n<!-- /results -->\n")
    assert R.main(["check", "--doc", str(tmp_path / "README.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no row 'nobody' at best, running" in err
    (tmp_path / "docs/results/summary.yaml").write_text("- {row: r, file: isic_cpu.jsonl}\n")
    assert R.main(["render", "--doc", str(tmp_path / "README.md")]) == 2
    assert "lacks the field 'evaluation'" in capsys.readouterr().err


def test_a_number_changed_in_a_results_file_is_caught(tmp_path):
    shutil.copy(ROOT / "docs/results.md", tmp_path / "results.md")
    shutil.copytree(ROOT / "docs/results", tmp_path / "results")
    path = tmp_path / "results/quick_grid.jsonl"
    path.write_text(path.read_text().replace('"test_dice": [90.1, 1.9]', '"test_dice": [90.2, 1.9]', 1))
    assert R.stale_tables(tmp_path / "results.md") == ["results/quick_grid.jsonl"]
    assert R.main(["check", "--doc", str(tmp_path / "results.md")]) == 1
    assert R.main(["render", "--write", "--doc", str(tmp_path / "results.md")]) == 0
    assert "| 90.2 ± 1.9 |" in (tmp_path / "results.md").read_text() and R.stale_tables(tmp_path / "results.md") == []


def fake_run(folder: Path, preset: str, seed: int, test_dice: float, overrides=()) -> Path:
    """A run folder as Trainer.finish writes it, with chosen numbers."""
    folder.mkdir(parents=True)
    save_config(load_config(ROOT / preset, [f"train.seed={seed}", "data.root=/somewhere", *overrides]),
                folder / "config.yaml")
    part = {"n_cases": 4, "dice": {"lesion": test_dice, "mean": test_dice},
            "jaccard": {"lesion": test_dice - 0.1, "mean": test_dice - 0.1}, "n_empty": seed,
            "hd95_vox": {"lesion": 10.0, "mean": 10.0}, "hd95_vox_pen": {"lesion": 20.0, "mean": 20.0}}
    evaluation = {"val": {"n_cases": 2, "dice": {"lesion": 0.5, "mean": 0.5}}, "test": part}
    summary = {"preset": "crossmatch", "dataset": "isic2018", "labeled": 0.05, "iterations": 1000,
               "best_iteration": 750, "train_seconds": 1500.0, "train_cpu_seconds": 1260.0 + 60 * seed,
               "device": "cpu", "headline": "best_running",
               "evaluations": {k: evaluation for k in ("best_running", "latest_running", "best_precise",
                                                       "latest_precise")}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "split.json").write_text(json.dumps({"labeled": ["a"], "unlabeled": ["b", "c"], "val": ["d"],
                                                   "test": ["e"], "split_source": "carved"}))
    return folder


def test_runs_added_from_their_folders_render_mean_sd_and_per_seed_values(tmp_path, capsys):
    target = tmp_path / "isic.jsonl"  # the committed header, none of its runs
    target.write_text((ROOT / "docs/results/isic_cpu.jsonl").read_text().splitlines()[0] + "\n")
    for seed, dice in ((0, 0.80), (1, 0.82)):
        run = fake_run(tmp_path / f"cm_s{seed}", "configs/isic_cpu.yaml", seed, dice, ["train.iterations=1000"])
        assert R.main(["add", str(run), "--to", str(target), "--config", str(ROOT / "configs/isic_cpu.yaml"),
                       "--hardware", "2-core test CPU", "--commit", "abc1234"]) == 0
    header, records = R.read_results(target)
    rec = records[0]
    assert (rec["label"], rec["overrides"], rec["seed"], rec["split"]) == (
        "`isic_cpu` train.iterations=1000", ["train.iterations=1000"], 0, "carved")
    assert rec["evaluations"]["best_running"]["test_dice"] == 80.0 and rec["commit"] == "abc1234"
    assert "/somewhere" not in target.read_text()  # machine paths stay out of the record
    table = R.render_file(target)
    assert ("| `isic_cpu` train.iterations=1000 | best | running | 50.0 ± 0.0 | **81.0 ± 1.4** | – | 71.0 ± 1.4 | "
            "10.0 ± 0.0 (20.0 ± 0.0) | – | 0/1 | 21.5 |") in table
    with pytest.raises(ValueError, match="already holds"):
        R.append_record(target, rec)


def test_grid_layout_computes_the_paired_difference_with_its_interval(tmp_path):
    target = tmp_path / "grid.jsonl"
    target.write_text(json.dumps({"kind": "header", "layout": "quick_grid", "baseline": "sup"}) + "\n")
    for label, dices in (("sup", (0.70, 0.72)), ("cm", (0.80, 0.85))):
        for seed, dice in enumerate(dices):
            run = fake_run(tmp_path / f"{label}{seed}", "configs/isic_cpu.yaml", seed, dice)
            R.append_record(target, R.run_record(run, ROOT / "configs/isic_cpu.yaml", label=label,
                                                 hardware="x", commit="y"))
    lines = R.render_file(target).splitlines()
    assert lines[2] == "| sup | 71.0 ± 1.4 | – | – | – | – |"
    assert lines[3] == "| cm | 82.5 ± 3.5 | +11.5 [−7.6, +30.6] | – | – | – |"


def test_each_row_is_paired_with_its_own_baseline(tmp_path):
    """CrossMatch at 10 % is compared with supervised at 10 %, not with the 5 % baseline."""
    target = tmp_path / "isic.jsonl"
    target.write_text(json.dumps({"kind": "header", "layout": "quick_grid",
                                  "baseline": {"cm5": "sup5", "cm10": "sup10"}}) + "\n")
    for label, dices in (("sup5", (0.70, 0.72)), ("cm5", (0.80, 0.85)), ("sup10", (0.75, 0.76)),
                         ("cm10", (0.80, 0.82))):
        for seed, dice in enumerate(dices):
            run = fake_run(tmp_path / f"{label}{seed}", "configs/isic_cpu.yaml", seed, dice)
            R.append_record(target, R.run_record(run, ROOT / "configs/isic_cpu.yaml", label=label,
                                                 hardware="x", commit="y"))
    deltas = {ln.split(" | ")[0][2:]: ln.split(" | ")[2] for ln in R.render_file(target).splitlines()[2:]}
    assert deltas == {"sup5": "–", "cm5": "+11.5 [−7.6, +30.6]", "sup10": "–", "cm10": "+5.5 [−0.9, +11.9]"}
    # Rows follow the header's "order" where it gives one; labels it does not name come last.
    header, records = R.read_results(target)
    rows = R.table_rows({**header, "order": ["cm10", "sup10", "sup5"]}, records)
    assert [r["label"] for r in rows] == ["cm10", "sup10", "sup5", "cm5"]


def test_ablation_grid_rows_pair_with_supervised_and_with_crossmatch_and_count_failures(tmp_path):
    """The grid layouts show both contrasts, the seeds and the per-image failures (Dice < 50)."""
    target = tmp_path / "grid.jsonl"
    target.write_text(json.dumps({"kind": "header", "layout": "isic_grid", "baseline": "supervised"}) + "\n")
    for label, dices in (("supervised", (0.70, 0.72, 0.71)), ("crossmatch", (0.80, 0.85, 0.81)),
                         ("image_only", (0.79, 0.83, 0.82))):
        for seed, dice in enumerate(dices):
            run = fake_run(tmp_path / f"{label}{seed}", "configs/isic_cpu.yaml", seed, dice)
            summary = json.loads((run / "summary.json").read_text())
            # four test images: two below 50 % Dice for supervised, one for the others; one unscored
            low = 2 if label == "supervised" else 1
            cases = [{"id": f"c{i}", "dice": {"lesion": 0.3 if i < low else 0.9}} for i in range(4)]
            cases.append({"id": "c4", "dice": {"lesion": None}})
            for ev in summary["evaluations"].values():
                ev["test"] = {**ev["test"], "cases": cases}
            (run / "summary.json").write_text(json.dumps(summary))
            R.append_record(target, R.run_record(run, ROOT / "configs/isic_cpu.yaml", label=label,
                                                 hardware="x", commit="y"))
    header, records = R.read_results(target)
    assert records[0]["evaluations"]["best_running"]["test_n_fail50"] == 2
    rows = {ln.split(" | ")[0][2:]: ln.split(" | ") for ln in R.render_file(target).splitlines()[2:]}
    # variant | seeds | Dice | vs supervised | vs CrossMatch | failures | HD95 | CPU min
    assert rows["supervised"][1:6] == ["3", "71.0 ± 1.0", "–", "−11.0 [−15.3, −6.7]", "2/2/2"]
    assert rows["crossmatch"][3:6] == ["+11.0 [+6.7, +15.3]", "–", "1/1/1"]
    assert rows["image_only"][3:5] == ["+10.3 [+7.5, +13.2]", "−0.7 [−4.5, +3.1]"]


def test_n_failures_needs_per_case_scores():
    assert R.n_failures({"dice": {"mean": 0.4}}) is None
    assert R.n_failures({"cases": [{"dice": {"RV": 0.4, "LV": 0.7}}, {"dice": {"RV": 0.5, "LV": 0.5}}]}) == 0
    assert R.n_failures({"cases": [{"dice": {"RV": 0.2, "LV": 0.7}}]}) == 1  # mean 0.45 over its classes


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_add_to_a_file_without_its_last_newline_keeps_every_line_valid(tmp_path):
    target = tmp_path / "x.jsonl"
    lines = (ROOT / "docs/results/isic_grid.jsonl").read_text().splitlines()[:2]
    target.write_text("\n".join(lines))  # no newline after the last record
    run = fake_run(tmp_path / "r", "configs/isic_cpu.yaml", 7, 0.8)
    assert R.main(["add", str(run), "--to", str(target), "--config", str(ROOT / "configs/isic_cpu.yaml"),
                   "--label", "probe", "--hardware", "x", "--commit", "y"]) == 0
    written = target.read_text().splitlines()
    assert written[:2] == lines and json.loads(written[2])["label"] == "probe" and len(written) == 3


@pytest.mark.parametrize("damage, words", [
    (lambda t: t.replace("<!-- /results -->", "", 1), "opens inside the one of line"),
    (lambda t: t + "\n<!-- results: results/quick_grid.jsonl -->\nno end\n", "is never closed"),
    (lambda t: t + "\n<!-- /results -->\n", "without an opening marker"),
])
def test_render_write_refuses_unbalanced_markers_and_keeps_the_text(tmp_path, capsys, damage, words):
    shutil.copytree(ROOT / "docs/results", tmp_path / "results")
    doc = tmp_path / "results.md"
    text = damage((ROOT / "docs/results.md").read_text()) + "A hand-written paragraph that must survive.\n"
    doc.write_text(text)
    for cmd in (["render", "--write"], ["check"]):
        assert R.main([*cmd, "--doc", str(doc)]) == 2
        line = _one_line(capsys)
        assert str(doc) in line and words in line, line
    assert doc.read_text() == text


def test_add_answers_each_bad_input_in_one_line(tmp_path, capsys):
    preset = str(ROOT / "configs/isic_cpu.yaml")
    target = tmp_path / "x.jsonl"
    target.write_text((ROOT / "docs/results/isic_cpu.jsonl").read_text().splitlines()[0] + "\n")
    run = fake_run(tmp_path / "r", "configs/isic_cpu.yaml", 0, 0.8)
    unfinished = tmp_path / "u"
    shutil.copytree(run, unfinished)
    (unfinished / "summary.json").unlink()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(target.read_text() + "\n{not json\n")
    cases = [([str(tmp_path / "nope"), "--to", str(target), "--config", preset], "no such run folder"),
             ([str(unfinished), "--to", str(target), "--config", preset], "has no summary.json: the run has not"),
             ([str(run), "--to", str(tmp_path / "missing.jsonl"), "--config", preset], "no such results file"),
             ([str(run), "--to", str(target), "--config", str(tmp_path / "none.yaml")], "no such preset"),
             ([str(run), "--to", str(bad), "--config", preset], "bad.jsonl, line 3: not JSON")]
    for args, words in cases:
        assert R.main(["add", *args, "--hardware", "x", "--commit", "y"]) == 2
        assert words in _one_line(capsys)
    assert R.main(["add", str(run), "--to", str(target), "--config", preset, "--hardware", "x", "--commit", "y"]) == 0
    capsys.readouterr()
    assert R.main(["add", str(run), "--to", str(target), "--config", preset, "--hardware", "x", "--commit", "y"]) == 2
    assert "already holds" in _one_line(capsys)
    assert len(target.read_text().splitlines()) == 2


def test_a_malformed_results_file_is_named_with_its_own_line_number(tmp_path, capsys):
    shutil.copy(ROOT / "docs/results.md", tmp_path / "results.md")
    shutil.copytree(ROOT / "docs/results", tmp_path / "results")
    path = tmp_path / "results/la_cpu.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", lines[1][:-1], *lines[2:]]) + "\n")  # line 3 cut short
    for cmd in ("render", "check"):
        assert R.main([cmd, "--doc", str(tmp_path / "results.md")]) == 2
        assert f"{path}, line 3: not JSON" in _one_line(capsys)
