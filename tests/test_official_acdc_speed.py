"""benchmarks/official_acdc_speed.py: its command line, warm-up rule and how rounds combine
(nothing is timed here; the official checkout is not needed)."""
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import official_acdc_speed as B

ROOT = Path(__file__).resolve().parents[1]


def fake_checkout(tmp_path: Path) -> Path:
    (tmp_path / "ACDC").mkdir()
    (tmp_path / "ACDC" / "train_cross_match.py").write_text("")
    return tmp_path


def test_help_and_a_folder_that_is_not_a_checkout_is_refused_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.official_acdc_speed", "--help"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "--official" in r.stdout and "--device" in r.stdout
    assert "acdc_speed_<device>_b<batch>_s<size>.json" in r.stdout
    r = subprocess.run([sys.executable, "-m", "benchmarks.official_acdc_speed", "--official", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "holds no ACDC/train_cross_match.py" in r.stderr.splitlines()[-1]


def test_the_official_loop_warms_up_past_what_its_loaders_prefetch(tmp_path):
    args = B.parse_args(["--official", str(fake_checkout(tmp_path)), "--batch", "12", "--size", "256"])
    # 3 loaders x 36 workers x 2 prefetched batches: 72 batches per loader are ready before
    # the first step; the timed iterations start after them.
    assert (B.warmup_of(args, "official"), B.warmup_of(args, "ours_auto")) == (75, 3)
    assert args.out.name == "acdc_speed_cpu_b12_s256.json"
    # With 2 workers per loader, 4 batches each are prefetched.
    args = B.parse_args(["--official", str(tmp_path), "--batch", "12", "--size", "256", "--official-workers", "2"])
    assert B.warmup_of(args, "official") == 7 and args.out.name == "acdc_speed_cpu_b12_s256_w2.json"
    args = B.parse_args(["--official", str(tmp_path), "--warmup", "5"])
    assert (B.warmup_of(args, "official"), B.warmup_of(args, "ours_fp32")) == (5, 5)
    with pytest.raises(SystemExit):
        B.parse_args(["--official", str(tmp_path), "--sides", "official,theirs"])


def test_the_device_reaches_each_side_and_names_the_results_file(tmp_path, monkeypatch):
    args = B.parse_args(["--official", str(fake_checkout(tmp_path)), "--batch", "12", "--size", "256",
                         "--device", "cuda"])
    assert args.out.name == "acdc_speed_cuda_b12_s256.json"
    seen = {}
    monkeypatch.setattr(B, "run_side_process", lambda module, argv, root, label: seen.setdefault("argv", argv))
    B.run_side(args, "ours_auto")
    assert seen["argv"][seen["argv"].index("--device") + 1] == "cuda"
    with pytest.raises(SystemExit):
        B.parse_args(["--official", str(tmp_path), "--device", "mps"])


def test_rounds_combine_into_one_window_over_every_timed_iteration():
    def one(times, cpu, pss):
        return {**B.window(times, {"main": 0.0, "children": 0.0}, {"main": cpu, "children": 1.0},
                           [1.0] * 3, [2.0] * 3), "pss_mb": pss, "peak_rss_main_mb": 10.0}

    c = B.combine([one([1.0, 2.0], 4.0, 100.0), one([3.0, 4.0], 8.0, 300.0)])
    assert c["iterations"] == 4 and c["rounds"] == 2 and c["median_s"] == 2.5
    assert c["median_s_per_round"] == [1.5, 3.5]
    assert c["cpu_s_per_it"] == pytest.approx((2.5 + 4.5) / 2)  # (main + children) / iterations, per round
    assert c["pss_mb"] == 300.0  # the larger round's memory


def test_the_worker_cap_reaches_the_loaders_built_inside_and_only_there():
    import torch.utils.data as tud

    with B.capped_workers(2):
        assert tud.DataLoader(range(8), num_workers=36).num_workers == 2
        assert tud.DataLoader(range(8), num_workers=1).num_workers == 1
    assert tud.DataLoader(range(8), num_workers=36).num_workers == 36
    with B.capped_workers(None):
        assert tud.DataLoader(range(8), num_workers=36).num_workers == 36
