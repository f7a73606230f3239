"""One command for a lent GPU: environment, equal-math tests, speed table, paper protocol.

    python benchmarks/gpu_session.py --budget-min 8 --out $OUT                  # first loan
    python benchmarks/gpu_session.py --budget-min 8 --out $OUT --resume PREV     # later loans
    python benchmarks/gpu_session.py --dry-run --out /tmp/gpu_dry                # CPU, toy size

Run from the repository root. Within the wall-clock budget (counted from the start of
this process) it does, in order, rewriting `<out>/gpu_session.json` after every step so
that a run killed at any point keeps what finished:

  env       GPU name and memory, torch/CUDA/cuDNN versions, CPU, cores, commit;
  tests     in a pytest subprocess on the device (CROSSMATCH_LITE_TEST_DEVICE): the official
            replay test (recorded "absent" while the file does not exist), the equal-math
            tests of the speed work, and this script's exact-resume test;
  data      real ACDC converted from the local training zip (python -m data_download acdc)
            into --data-root (default under /tmp: never under --out), resized cache included;
  speed     batch 12 / crop 256: ours fp32, bf16, bf16 + torch.compile against the
            in-process official loop (benchmarks/bench_step.py): s/it, images/s, peak
            memory, GPU idle share, the official loop's data-preparation share;
  protocol  configs/crossmatch.yaml on that data until the budget is nearly used, in
            <out>/protocol/ (latest.pt, best.pt, metrics, no data: ~25 MB). `--resume`
            takes that folder (or the whole previous --out) back and continues exactly;
            the run that reaches 30 000 iterations also writes the final evaluations.

`--resume` alone skips tests and speed (pass --steps to choose). `--dry-run` runs the same
sequence on the CPU at toy size (toy_acdc, tiny network, 2-iteration protocol, a few
selected tests) in well under 2 minutes. Exit status: 0 when every step ran (a failing
test is a result, recorded in the JSON), 1 when a step raised, 2 for bad arguments or no
CUDA device outside a dry run.
"""
from __future__ import annotations

import time

T0 = time.monotonic()  # the budget counts from here, imports included

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# First on the path: the checkout this file is in, not another one installed in editable mode.
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import acdc_parts, session_data, session_env, session_protocol, session_pytest, session_speed  # noqa: E402
from crossmatch_lite.run.files import atomic_write_json  # noqa: E402

STEPS = ("env", "tests", "data", "speed", "protocol")
RESULTS_NAME = "gpu_session.json"

# What each mode runs. The dry run keeps the structure and shrinks every size.
FULL = {
    "speed": {"batch": 12, "size": 256, "repeats": 5, "warmup": 1, "compile_warmup": 3, "threads": 0, "sets": []},
    "tests": [("tests/test_official_replay.py", None, False),
              ("tests/test_speed_equivalence.py", None, False),
              ("tests/test_gpu_session.py", "resume", False)],
    "caps": {"tests": 180, "data": 300, "speed": 200, "speed_compile": 300},
    "val_seconds": 15.0, "finish_seconds": 300.0, "min_protocol_s": 45.0,
    "protocol_sets": [],
}
TINY_NET = "model.channels=[4,8,16,32,64]"
DRY = {
    "speed": {"batch": 2, "size": 32, "repeats": 1, "warmup": 0, "compile_warmup": 0, "threads": 1,
              "sets": [TINY_NET], "extra": ["--no-sgemm"]},
    # Collection only for the replay test: proves it imports and finds the device variable.
    # The resume test is skipped: CI runs it directly, and it is this file's own test.
    "tests": [("tests/test_official_replay.py", None, True),
              ("tests/test_speed_equivalence.py", "quantize", False),
              ("tests/test_gpu_session.py", None, "skip")],
    # Caps far above the ~15 s each piece takes on 2 idle cores: a loaded CI machine is slow.
    "caps": {"tests": 150, "data": 60, "speed": 150, "speed_compile": 60},
    "val_seconds": 2.0, "finish_seconds": 20.0, "min_protocol_s": 0.0,
    "protocol_sets": ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", TINY_NET,
                      "train.iterations=2", "train.val_every=1", "train.log_every=1",
                      "eval.precise_bn_batches=2", "eval.precise_bn_batch_size=4", "eval.distances=false"],
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=8.0, help="wall-clock budget in minutes (default 8)")
    ap.add_argument("--out", default=os.environ.get("OUT") or None,
                    help="output folder (default: $OUT, else runs/gpu_session)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: check the whole sequence quickly")
    ap.add_argument("--resume", metavar="DIR", help="a previous session's --out (or its protocol/ folder): "
                                                    "continue that protocol run")
    ap.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)} (default: all; "
                                    "with --resume: env,data,protocol)")
    ap.add_argument("--device", default="auto", help="auto (CUDA if present) | cuda | cuda:N | cpu")
    ap.add_argument("--allow-cpu", action="store_true", help="run the full-size session without CUDA (hours)")
    ap.add_argument("--acdc-zip", help=f"the ACDC training zip (default: ${session_data.ZIP_ENV}, then "
                                       "shared/datasets/acdc/ in or next to the repository, then /work/shared)")
    ap.add_argument("--acdc-parts", default=str(acdc_parts.DEFAULT_PARTS),
                    help="where the zip's parts are when no zip is found (python -m benchmarks.acdc_parts; "
                         "default %(default)s)")
    ap.add_argument("--data-root", default=str(session_data.DEFAULT_DATA_ROOT),
                    help="where ACDC is converted and cached (default %(default)s; never under --out)")
    ap.add_argument("--protocol-compile", choices=("auto", "on", "off"), default="auto",
                    help="torch.compile for a new protocol run; auto: on when the speed step found it "
                         "faster on CUDA. A resumed run keeps its own setting.")
    ap.add_argument("--protocol-set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for a new protocol run (repeatable)")
    ap.add_argument("--protocol-stop-at", type=int, help="stop the protocol at this iteration (tests)")
    ap.add_argument("--protocol-share", type=float, default=0.4,
                    help="share of the budget kept for the protocol while the other steps run")
    ap.add_argument("--keep-scratch", action="store_true",
                    help="keep the full logs and raw benchmark files (kept anyway when a step fails)")
    ap.add_argument("--finish-estimate-s", type=float,
                    help="seconds the final evaluations take (decides whether the last chunk fits)")
    args = ap.parse_args(argv)
    if args.steps:
        bad = [s for s in args.steps.split(",") if s not in STEPS]
        if bad:
            ap.error(f"unknown step(s) {', '.join(bad)}; choose from {', '.join(STEPS)}")
    return args


class Session:
    """The results file and the clock: every step's outcome is written as soon as it exists."""

    def __init__(self, args, out: Path, steps: list[str], plan: dict):
        self.args, self.out, self.plan = args, out, plan
        self.deadline = T0 + 60.0 * args.budget_min
        self.doc = {
            "schema": "crossmatch_lite.gpu_session/1",
            "command": "python benchmarks/gpu_session.py " + " ".join(sys.argv[1:]),
            "dry_run": args.dry_run, "budget_s": round(60.0 * args.budget_min),
            "started": session_protocol.now_iso(), "card": None, "hardware": None,
            "steps": {s: {"status": "pending" if s in steps else "not requested"} for s in STEPS},
        }
        self.steps = steps
        self.save()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allowance(self, cap: float) -> float:
        """Seconds a step before the protocol may take: its cap, minus what the protocol keeps."""
        keep = self.args.protocol_share * 60.0 * self.args.budget_min if "protocol" in self.steps else 0.0
        return max(0.0, min(cap, self.left() - keep))

    def save(self) -> None:
        self.doc["updated"] = session_protocol.now_iso()
        self.doc["elapsed_s"] = round(time.monotonic() - T0, 1)
        atomic_write_json(self.out / RESULTS_NAME, self.doc)

    def set(self, step: str, result: dict) -> None:
        self.doc["steps"][step] = result
        self.save()

    def run(self, step: str, fn) -> dict | None:
        if step not in self.steps:
            return None
        t0 = time.monotonic()
        self.set(step, {"status": "running"})
        print(f"[{time.monotonic() - T0:6.1f} s] {step} ...", file=sys.stderr, flush=True)
        try:
            result = fn()
        except Exception as e:
            result = {"status": "error", "error": f"{type(e).__name__}: {e}",
                      "traceback_tail": traceback.format_exc().splitlines()[-8:]}
        result.setdefault("status", "ok")
        result["seconds"] = round(time.monotonic() - t0, 1)
        self.set(step, result)
        print(f"[{time.monotonic() - T0:6.1f} s] {step}: {result['status']}", file=sys.stderr, flush=True)
        return result


def pick_device(name: str, dry_run: bool) -> torch.device:
    if dry_run:
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = DRY if args.dry_run else FULL
    out = Path(args.out or ROOT / "runs" / "gpu_session").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.steps:
        steps = args.steps.split(",")
    else:
        steps = ["env", "data", "protocol"] if args.resume else list(STEPS)
    steps = [s for s in STEPS if s in steps]
    session = Session(args, out, steps, plan)
    device = pick_device(args.device, args.dry_run)
    run_dir = out / session_protocol.RUN_DIR_NAME
    if args.resume:
        session_protocol.adopt_run(Path(args.resume), run_dir)
        session.doc["resumed_from"] = str(Path(args.resume).resolve())

    no_cuda = not torch.cuda.is_available()
    if no_cuda and device.type == "cuda":
        device = torch.device("cpu")  # report the machine as it is, then refuse below
    session.run("env", lambda: session_env.environment(device))
    hardware = session_env.hardware_info(device)
    card = session_env.card_name({"hardware": hardware})
    session.doc.update(card=card, hardware=hardware)
    session.save()
    refuse = None
    missing = session_env.missing_packages()
    if missing:
        # Every later step imports them: stop now rather than spend device time on errors.
        refuse = (f"missing Python packages: {', '.join(missing)}; carry them as wheels "
                  "(README, 'On a GPU')")
    elif no_cuda and not (args.dry_run or args.allow_cpu):
        refuse = ("no CUDA device (torch.cuda.is_available() is False); --dry-run or --allow-cpu "
                  "to run on the CPU")
    if refuse:
        for s in steps:
            if s != "env":
                session.set(s, {"status": "skipped", "reason": refuse})
        print(f"{refuse}; nothing run beyond the environment report ({out / RESULTS_NAME})", file=sys.stderr)
        return 2
    # Logs and raw benchmark files go elsewhere: a device hands back at most 8 files from
    # $OUT (README, "On a GPU"), and those are this JSON and the run folder's seven.
    scratch = Path(tempfile.mkdtemp(prefix="gpu_session_"))
    session.doc["scratch"] = str(scratch)

    # -------------------------------------------------------------- tests
    def tests() -> dict:
        results, status = {}, "ok"
        for test_file, select, collect_only in plan["tests"]:
            key = Path(test_file).stem
            budget = session.allowance(plan["caps"]["tests"])
            if collect_only == "skip":
                results[key] = {"file": test_file, "status": "skipped", "reason": "dry run: CI runs it itself"}
                continue
            if budget < 10:
                results[key] = {"file": test_file, "status": "skipped", "reason": "budget"}
                continue
            r = session_pytest.run_pytest(test_file, device.type, budget, select=select,
                                          collect_only=collect_only, log_dir=scratch)
            results[key] = r
            if r["status"] not in ("passed", "absent", "skipped"):
                status = "failed"
            session.set("tests", {"status": "running", "files": results})
        return {"status": status, "files": results}

    session.run("tests", tests)

    # -------------------------------------------------------------- protocol config and data
    proto = {}

    def data() -> dict:
        compile_ = device.type == "cuda" and args.protocol_compile == "on"
        cfg, resumed = session_protocol.protocol_config(
            run_dir, device=str(device), threads=plan["speed"]["threads"],
            sets=plan["protocol_sets"] + args.protocol_set, compile_=compile_, data_root=args.data_root)
        proto.update(cfg=cfg, resumed=resumed)
        result = {"dataset": cfg.data.name}
        zip_path = session_data.find_acdc_zip(args.acdc_zip)
        result["acdc_zip"] = str(zip_path) if zip_path else None
        if cfg.data.name == "acdc":
            result["prepare"] = session_data.prepare_acdc(Path(cfg.data.root), zip_path,
                                                          timeout=max(30.0, session.allowance(plan["caps"]["data"])),
                                                          explicit_zip=args.acdc_zip,
                                                          parts_dir=Path(args.acdc_parts))
        proto["data"], result["load"] = session_data.load_training_data(cfg.data, cfg.train.seed)
        proto["acdc_root"] = cfg.data.root if cfg.data.name == "acdc" else None
        return result

    if "data" in steps or "protocol" in steps:
        if "data" not in steps:
            session.steps = steps = [s for s in STEPS if s in steps + ["data"]]
        session.run("data", data)

    # -------------------------------------------------------------- speed
    speed_info = {}

    def speed() -> dict:
        sp = plan["speed"]
        # Real slices when the data step prepared them (the official loop reads one HDF5 file
        # per sample, which is part of what it costs); else, and always in a dry run, toy data.
        root = proto.get("acdc_root") or (args.data_root if not args.dry_run and
                                          session_data.is_prepared(Path(args.data_root)) else None)
        common = dict(device=str(device), batch=sp["batch"], size=sp["size"], repeats=sp["repeats"],
                      data="acdc" if root else "toy_acdc", root=root or args.data_root,
                      threads=sp["threads"], sets=sp["sets"], extra=sp.get("extra", []))
        result = {"data": common["data"], "batch": sp["batch"], "size": sp["size"], "repeats": sp["repeats"]}
        def bench(compiled: bool, cap: str, warmup: int, suffix: str) -> dict:
            """One bench_step run in its own process, within what is left of its cap."""
            out_json = scratch / f"speed_{device.type}_b{sp['batch']}_s{sp['size']}{suffix}.json"
            budget = session.allowance(plan["caps"][cap])
            if budget < 10:
                return {"status": "skipped", "reason": "budget"}
            return session_speed.run_bench(
                session_speed.bench_command(out_json, compiled=compiled, warmup=warmup, **common),
                out_json, budget, scratch / f"speed_{'compile' if compiled else 'eager'}.log")

        result["eager"] = bench(False, "speed", sp["warmup"], "")
        session.set("speed", {"status": "running", **result})
        if device.type == "cuda":
            result["compiled"] = bench(True, "speed_compile", sp["compile_warmup"], "_compile")
        else:
            # Inductor's CPU path builds C++ for minutes and says nothing about CUDA graphs.
            result["compiled"] = {"status": "skipped", "reason": "torch.compile is timed on CUDA only"}
        eager_res = result["eager"].get("result")
        comp_res = result["compiled"].get("result")
        result["table"] = session_speed.table(eager_res, comp_res, card)
        result["table_markdown"] = session_speed.markdown(result["table"])
        loops = {r["loop"]: r["s_per_it"] for r in result["table"]}
        speed_info.update(bf16=loops.get(session_speed.LABELS["ours[bf16]"]),
                          compiled=loops.get(session_speed.LABELS["ours_compiled"]))
        bad = [p for p in ("eager", "compiled") if result[p]["status"] not in ("ok", "skipped")]
        result["status"] = "ok" if not bad else "partial"
        return result

    session.run("speed", speed)

    # -------------------------------------------------------------- protocol
    def protocol() -> dict:
        if "data" not in proto:
            raise RuntimeError("the data step failed (see its error); no protocol run without its data")
        cfg = proto["cfg"]
        if (not proto["resumed"] and args.protocol_compile == "auto" and device.type == "cuda"
                and speed_info.get("compiled") and speed_info.get("bf16")
                and speed_info["compiled"] < speed_info["bf16"]):
            cfg.train.compile = True  # a new run only: compile where the speed step found it faster
        left = session.left()
        if left < plan["min_protocol_s"]:
            return {"status": "skipped", "reason": f"{left:.0f} s left of the budget"}
        s_per_it = speed_info.get("compiled") if cfg.train.compile else speed_info.get("bf16")
        finish = args.finish_estimate_s if args.finish_estimate_s is not None else plan["finish_seconds"]

        def progress(p: dict) -> None:
            session.set("protocol", {**p, "status": "running"})

        return session_protocol.run_protocol(
            cfg, run_dir, proto["data"], session.deadline, card=card, s_per_it=s_per_it,
            val_seconds=plan["val_seconds"], finish_seconds=finish,
            margin=max(5.0, 0.02 * 60.0 * args.budget_min), stop_at=args.protocol_stop_at,
            on_progress=progress)

    session.run("protocol", protocol)
    # The trainer's run-folder lock (RUN/.lock) is released when training ends; the empty
    # file would take one of the 8 files a device hands back, and a resume makes a new one.
    for lock in out.rglob(".lock"):
        lock.unlink(missing_ok=True)

    failed = any(s.get("status") == "error" for s in session.doc["steps"].values())
    if not (failed or args.keep_scratch):
        shutil.rmtree(scratch, ignore_errors=True)  # its logs' ends are in the JSON already
        session.doc["scratch"] = None
    session.doc["finished"] = session_protocol.now_iso()
    session.doc["out_files"] = out_files(out)
    session.save()
    print(report(session.doc, out))
    return 1 if failed else 0


def out_files(out: Path) -> dict:
    """What a device would hand back: at most 8 files, each under 16 MiB (see README)."""
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    files[RESULTS_NAME] = files.get(RESULTS_NAME, 0)
    big = [k for k, v in files.items() if v > 16 * 2 ** 20]
    return {"count": len(files), "mib": round(sum(files.values()) / 2 ** 20, 2), "files": files,
            "fits_device_return": len(files) <= 8 and not big}


def report(doc: dict, out: Path) -> str:
    """A short human summary (the device tool returns the end of stdout)."""
    lines = [f"card: {doc['card']}; {doc['elapsed_s']} s of {doc['budget_s']} s; results: {out / RESULTS_NAME}"]
    for name, s in doc["steps"].items():
        lines.append(f"  {name:<9}{s.get('status')}" + (f" ({s['seconds']} s)" if "seconds" in s else "")
                     + (f": {s['error']}" if "error" in s else ""))
    tests = doc["steps"]["tests"].get("files", {})
    for k, r in tests.items():
        lines.append(f"    {k}: {r.get('status')} {r.get('counts', '')}")
    if doc["steps"]["speed"].get("table_markdown"):
        lines.append(doc["steps"]["speed"]["table_markdown"])
    p = doc["steps"]["protocol"]
    if "iteration" in p:
        lines.append(f"  protocol: iteration {p['iteration_start']} -> {p['iteration']} of {p['iterations_total']}, "
                     f"best val Dice {p['best_val_dice']:.4f} at {p['best_iteration']}, run folder "
                     f"{p['run_dir']} ({p.get('run_dir_mb')} MB)")
    f = doc.get("out_files")
    if f:
        lines.append(f"  {out}: {f['count']} files, {f['mib']} MiB"
                     + ("" if f["fits_device_return"] else " -- MORE THAN A DEVICE HANDS BACK (8 files, 16 MiB each)"))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
