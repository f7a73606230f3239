"""The seed-count estimate: paired sd, the half-width n seeds give, the difference they find."""
import json

import pytest
from scipy import stats

from crossmatch_lite.tutorial import power as P


def test_half_width_and_detectable_difference_follow_the_t_quantiles():
    # sd 1.0 over 3 seeds: t(0.975, 2) = 4.303, / sqrt(3) -> 2.484
    assert P.shown(1.0, 3) == pytest.approx(2.4842, abs=1e-4)
    assert P.shown(1.5, 5) == pytest.approx(stats.t.ppf(0.975, 4) * 1.5 / 5 ** 0.5)
    # 80 % power adds t(0.80, n-1): 2.776 + 0.941 over sqrt(5)
    assert P.detectable(1.0, 5) == pytest.approx((2.7764 + 0.9410) / 5 ** 0.5, abs=1e-3)
    assert P.shown(1.0, 8) < P.shown(1.0, 5) < P.shown(1.0, 3)


def test_paired_sd_uses_only_the_shared_seeds():
    n, sd = P.paired_sd({0: 80.0, 1: 82.0, 2: 81.0, 3: 90.0}, {0: 78.0, 1: 79.0, 2: 80.0})
    assert n == 3 and sd == pytest.approx(1.0)  # differences 2, 3, 1
    assert P.paired_sd({0: 1.0}, {0: 2.0}) == (1, None)


def test_power_table_reads_a_results_file(tmp_path):
    path = tmp_path / "g.jsonl"
    lines = [{"kind": "header", "layout": "isic_grid"}]
    for label, dices in (("a", (80.0, 82.0, 81.0)), ("b", (78.0, 79.0, 80.0)), ("c", (70.0,))):
        lines += [{"kind": "run", "label": label, "seed": s, "evaluations": {"best_running": {"test_dice": d}}}
                  for s, d in enumerate(dices)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rows = P.power_table(path, seeds=(3, 5))
    assert [(r["a"], r["b"], r["n"]) for r in rows] == [("a", "b", 3)]  # c shares one seed: no sd
    assert rows[0]["mean"] == pytest.approx(2.0) and rows[0]["shown_3"] == pytest.approx(2.4842, abs=1e-4)
    assert P.main([str(path), "--seeds", "3"]) == 0
    assert P.main([str(tmp_path / "missing.jsonl")]) == 2
