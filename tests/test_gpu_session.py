"""benchmarks/gpu_session.py: its CPU dry run leaves a result for every step, and a protocol
run stopped by the session's budget and resumed from the previous output ends exactly where
an uninterrupted one does.

The resume test runs on CROSSMATCH_LITE_TEST_DEVICE (default cpu); the GPU session runs it
with cuda to prove the resume with the checkpoint's CUDA RNG state.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("CROSSMATCH_LITE_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda"):
    # Deterministic kernels, so that any difference left is the resume's, not cuDNN's.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False

from benchmarks import gpu_session  # noqa: E402
from crossmatch_lite.run.checkpoints import load_checkpoint  # noqa: E402

STEP_STATUSES = {"ok", "partial", "finished", "stopped_for_budget"}


def test_dry_run_writes_a_result_for_every_step(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_session.py", "--dry-run", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CROSSMATCH_LITE_TEST_DEVICE": "cpu", "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads((out / "gpu_session.json").read_text())

    assert doc["dry_run"] is True and doc["finished"]
    assert doc["hardware"]["cpu"] and doc["card"]
    assert list(doc["steps"]) == ["env", "tests", "data", "speed", "protocol"]
    for name, step in doc["steps"].items():
        assert step["status"] in STEP_STATUSES, (name, step)
        assert step["seconds"] >= 0

    assert doc["steps"]["env"]["torch"] == torch.__version__
    files = doc["steps"]["tests"]["files"]
    assert set(files) == {"test_official_replay", "test_official_replay_la", "test_views2d",
                          "test_gpu_session"}
    for r in files.values():
        assert r["status"] in {"passed", "absent", "skipped"}, r
    assert files["test_views2d"]["counts"]["passed"] >= 1

    speed = doc["steps"]["speed"]
    loops = {row["loop"]: row for row in speed["table"]}
    assert {"official loop re-creation (fp32)", "ours fp32", "ours bf16"} <= set(loops)
    for row in loops.values():
        assert row["s_per_it"] > 0 and row["images_per_s"] > 0 and row["card"] == doc["card"]
        assert row["peak_mem_mib"] is not None
    assert loops["official loop re-creation (fp32)"]["data_prep_share"] is not None
    assert speed["compiled"]["status"] == "skipped"  # CUDA only
    raw = speed["eager"]["result"]  # bench_step's own JSON, kept whole
    assert raw["hardware"]["cpu"] == doc["hardware"]["cpu"] and raw["loops"]["official"]["s_per_it_median"] > 0
    assert "re-creation" in raw["measurement"]["official"]  # never presented as the official code

    proto = doc["steps"]["protocol"]
    assert proto["status"] == "finished" and proto["iteration"] == proto["iterations_total"] == 2
    assert proto["summary"]["test"]["dice"]["mean"] is not None
    run = out / "protocol"
    assert {"latest.pt", "best.pt", "summary.json", "metrics.jsonl", "session_history.json"} <= \
        {p.name for p in run.iterdir()}
    assert not (run / "cache").exists()  # the data and their cache stay in the data folder
    logs = {p.name for p in (out / "logs").iterdir()}
    assert {"pytest_test_views2d.log", "speed_eager.log"} <= logs, logs


TOY = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "model.channels=[4,8,16,32,64]",
       "train.iterations=4", "train.val_every=2", "train.log_every=1", "eval.distances=false",
       "eval.precise_bn_batches=2", "eval.precise_bn_batch_size=4"]


def _session(out, *extra):
    argv = ["--out", str(out), "--steps", "protocol", "--device", DEVICE, "--allow-cpu",
            "--budget-min", "60", "--finish-estimate-s", "1", "--protocol-compile", "off", *extra]
    assert gpu_session.main(argv) == 0
    return json.loads((out / "gpu_session.json").read_text())["steps"]["protocol"]


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_protocol_stopped_and_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # any temporary file stays in tmp_path
    # The module imported 50 minutes ago (as in a long test run): each call's budget still
    # counts from the call.
    monkeypatch.setattr(gpu_session, "T0", time.monotonic() - 3000)
    sets = [a for s in TOY for a in ("--protocol-set", s)]
    straight = _session(tmp_path / "straight", *sets)
    assert straight["status"] == "finished" and straight["iteration"] == 4

    # A time limit that runs out within an iteration makes a chunk of one: chunk 1 stops
    # between checkpoints (the Trainer saves latest.pt at its stop), chunk 2 at a validation
    # (the validation's own checkpoint), chunk 3, given the budget's limit (the saved
    # config still holds chunk 2's tiny one), finishes. Each resumes from the previous
    # session's --out, into a new one.
    tiny = ("--protocol-max-minutes", "1e-6")
    first = _session(tmp_path / "chunk1", *sets, *tiny)
    assert first["status"] == "stopped_for_budget" and first["iteration"] == 1
    assert first["stop_reason"].startswith("time limit") and first["time_limit"]["max_minutes"] == 1e-6
    second = _session(tmp_path / "chunk2", "--resume", str(tmp_path / "chunk1"), *tiny)
    assert second["status"] == "stopped_for_budget" and (second["iteration_start"], second["iteration"]) == (1, 2)
    assert second["last_val"]["iteration"] == 2
    third = _session(tmp_path / "chunk3", "--resume", str(tmp_path / "chunk2"))
    assert third["status"] == "finished" and (third["iteration_start"], third["iteration"]) == (2, 4)
    assert third["time_limit"]["max_minutes"] > 50  # 60 minutes less the reserve
    assert [h["to_iteration"] for h in third["history"]] == [1, 2, 4]

    a = load_checkpoint(tmp_path / "straight" / "protocol" / "latest.pt")
    b = load_checkpoint(tmp_path / "chunk3" / "protocol" / "latest.pt")
    floor = 0.0
    if DEVICE.startswith("cuda"):
        # What two uninterrupted runs on this GPU differ by, if anything.
        _session(tmp_path / "straight2", *sets)
        floor = _max_diff(a["model"], load_checkpoint(tmp_path / "straight2" / "protocol" / "latest.pt")["model"])
    diff = _max_diff(a["model"], b["model"])
    assert diff <= floor, f"resumed run differs by {diff} (two uninterrupted runs: {floor})"
    if floor == 0.0:
        for k in a["model"]:
            assert torch.equal(a["model"][k], b["model"][k]), k

    strip = lambda p: [{k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
                       for line in (p / "protocol" / "metrics.jsonl").read_text().splitlines()]
    rows_a, rows_b = strip(tmp_path / "straight"), strip(tmp_path / "chunk3")
    if floor == 0.0:
        assert rows_a == rows_b
    else:
        assert [r["iteration"] for r in rows_a] == [r["iteration"] for r in rows_b]
        for ra, rb in zip(rows_a, rows_b):
            for k in ra:
                assert ra[k] == pytest.approx(rb[k], rel=1e-3, abs=1e-4), (ra["iteration"], k)
    assert third["summary"]["test"]["dice"] == pytest.approx(straight["summary"]["test"]["dice"], abs=1e-4 if floor else 0)


def test_time_limit_keeps_the_final_evaluation_only_when_the_end_is_within_reach():
    from types import SimpleNamespace

    from benchmarks.session_protocol import time_limit
    t = SimpleNamespace(iterations=30_000, val_every=500)
    kw = dict(val_seconds=15.0, finish_seconds=300.0, margin=60.0)
    # 0.05 s/it: 1 000 iterations (50 s, 2 validations) fit an hour easily: reserve the evaluation.
    near = time_limit(t, 29_000, 3600.0, s_per_it=0.05, **kw)
    assert near["end_within_reach"] and near["reserve_s"] == pytest.approx(375.05, abs=0.1)
    # 30 000 iterations at 0.05 s/it (1 500 s + 60 validations) do not fit 20 minutes.
    far = time_limit(t, 0, 1200.0, s_per_it=0.05, **kw)
    assert not far["end_within_reach"] and far["max_minutes"] == round((1200.0 - 75.05) / 60.0, 3)
    assert time_limit(t, 0, 1200.0, s_per_it=None, **kw)["end_within_reach"]  # unknown pace: reserve
