"""One command for a GPU machine: environment, the CUDA tests, a speed table, the paper protocol.

    python benchmarks/gpu_session.py --budget-min 60 --acdc-zip PATH/TO/ACDC-training.zip --out runs/gpu_session
    python benchmarks/gpu_session.py --budget-min 60 --resume runs/gpu_session --out runs/gpu_session_2
    python benchmarks/gpu_session.py --dry-run --out runs/gpu_dry      # the same sequence on the CPU, toy size

Run from the repository root. Within the wall-clock budget (counted from the start of this
process) it does, in order, rewriting `<out>/gpu_session.json` after every step so that a
run killed at any point keeps what finished:

  env       GPU name and memory, torch/CUDA/cuDNN versions, CPU, cores, commit;
  tests     in a pytest subprocess on the device (CROSSMATCH_LITE_TEST_DEVICE): the official
            replay tests (ACDC and LA), the equal-math tests of the speed work, and this
            script's exact-resume test;
  data      real ACDC in --data-root (default data/ACDC): reused when prepared there, else
            converted from the training zip (--acdc-zip or $CROSSMATCH_LITE_ACDC_ZIP) with
            python -m data_download acdc, resized cache included;
  speed     batch 12 / crop 256: ours fp32, bf16, bf16 + torch.compile against the re-created
            official loop (benchmarks/bench_step.py; the baseline is benchmarks/official_loop.py,
            not the official code): s/it, images/s, peak memory, GPU idle share, the
            baseline's data-preparation share;
  protocol  configs/crossmatch.yaml on that data until the budget is nearly used, in
            <out>/protocol/ (latest.pt, best.pt, metrics; no data). `--resume` takes that
            folder (or the whole previous --out) and continues exactly; the chunk that
            reaches 30 000 iterations also writes the final evaluations.

The child processes' logs and bench_step's own JSON files go to <out>/logs/. `--resume`
alone skips tests and speed (pass --steps to choose). `--dry-run` runs the same sequence on
the CPU at toy size (toy_acdc, tiny network, 2-iteration protocol, a few selected tests) in
a few minutes. Exit status: 0 when every step ran (a failing test is a result, recorded in
the JSON), 1 when a step raised, 2 for bad arguments, missing packages, or no CUDA device
outside a dry run (without --allow-cpu).
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:
    # Started as a file: start again as this checkout's module, so that this checkout's
    # packages (not a copy installed from another one) are imported, here and in every
    # child process of the session.
    import os
    import sys
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_root, os.environ.get("PYTHONPATH")) if p)
    os.execv(sys.executable, [sys.executable, "-m", "benchmarks.gpu_session", *sys.argv[1:]])

import time  # noqa: E402

T0 = time.monotonic()  # run as a command, the budget counts from here, imports included

import argparse  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from crossmatch_lite.run.files import atomic_write_json  # noqa: E402

from . import session_protocol, session_steps  # noqa: E402

STEPS = ("env", "tests", "data", "speed", "protocol")
RESULTS_NAME = "gpu_session.json"

# What each mode runs: (test file, -k selection, "run" | "collect" | "skip").
FULL = {
    "speed": {"batch": 12, "size": 256, "repeats": 5, "warmup": 1, "compile_warmup": 3, "threads": 0, "sets": []},
    "tests": [("tests/test_official_replay.py", None, "run"),
              ("tests/test_official_replay_la.py", None, "run"),
              ("tests/test_views2d.py", None, "run"),
              ("tests/test_gpu_session.py", "resume", "run")],
    "caps": {"tests": 180, "data": 300, "speed": 200, "speed_compile": 300},
    "val_seconds": 15.0, "finish_seconds": 300.0, "min_protocol_s": 45.0,
    "protocol_sets": [],
}
TINY_NET = "model.channels=[4,8,16,32,64]"
# The dry run keeps the structure and shrinks every size.
DRY = {
    "speed": {"batch": 2, "size": 32, "repeats": 1, "warmup": 0, "compile_warmup": 0, "threads": 1,
              "sets": [TINY_NET], "extra": ["--no-sgemm"]},
    # Collection only for the replay tests: proves they import and read the device variable.
    # The resume test is skipped: it is this file's own test, and runs on its own there.
    "tests": [("tests/test_official_replay.py", None, "collect"),
              ("tests/test_official_replay_la.py", None, "collect"),
              ("tests/test_views2d.py", "quantize", "run"),
              ("tests/test_gpu_session.py", None, "skip")],
    # Caps far above the ~15 s each piece takes on 2 idle cores: a loaded machine is slow.
    "caps": {"tests": 150, "data": 60, "speed": 150, "speed_compile": 60},
    "val_seconds": 2.0, "finish_seconds": 20.0, "min_protocol_s": 0.0,
    "protocol_sets": ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", TINY_NET,
                      "train.iterations=2", "train.val_every=1", "train.log_every=1",
                      "eval.precise_bn_batches=2", "eval.precise_bn_batch_size=4", "eval.distances=false"],
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=60.0, help="wall-clock budget in minutes (default 60)")
    ap.add_argument("--out", default="runs/gpu_session", help="output folder (default %(default)s)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: check the whole sequence quickly")
    ap.add_argument("--resume", metavar="DIR", help="a previous session's --out (or its protocol/ folder): "
                                                    "continue that protocol run")
    ap.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)} (default: all; "
                                    "with --resume: env,data,protocol)")
    ap.add_argument("--device", default="auto", help="auto (CUDA if present) | cuda | cuda:N | cpu")
    ap.add_argument("--allow-cpu", action="store_true", help="run the full-size session without CUDA (hours)")
    ap.add_argument("--acdc-zip", help=f"the ACDC training zip, converted when --data-root is not prepared "
                                       f"(default ${session_steps.ZIP_ENV})")
    ap.add_argument("--data-root", default="data/ACDC",
                    help="prepared ACDC, or where the zip is converted (default %(default)s)")
    ap.add_argument("--protocol-compile", choices=("auto", "on", "off"), default="auto",
                    help="torch.compile for a new protocol run; auto: on when the speed step found it "
                         "faster on CUDA. A resumed run keeps its own setting.")
    ap.add_argument("--protocol-set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for a new protocol run (repeatable)")
    ap.add_argument("--protocol-max-minutes", type=float, metavar="M",
                    help="a lower train.max_minutes than the budget allows (tests: a tiny one trains "
                         "one iteration)")
    ap.add_argument("--protocol-share", type=float, default=0.4,
                    help="share of the budget kept for the protocol while the other steps run")
    ap.add_argument("--finish-estimate-s", type=float,
                    help="seconds the final evaluations take (kept in reserve when the end is within reach)")
    args = ap.parse_args(argv)
    if args.steps:
        bad = [s for s in args.steps.split(",") if s not in STEPS]
        if bad:
            ap.error(f"unknown step(s) {', '.join(bad)}; choose from {', '.join(STEPS)}")
    return args


def pick_device(name: str, dry_run: bool) -> torch.device:
    if dry_run:
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")  # report the machine as it is; preflight() then refuses
    return torch.device(name)


class Session:
    """The results file, the clock and the steps: every outcome is written as soon as it exists."""

    def __init__(self, args, started: float | None = None):
        self.args = args
        self.plan = DRY if args.dry_run else FULL
        self.out = Path(args.out).resolve()
        self.run_dir = self.out / session_protocol.RUN_DIR_NAME
        self.log_dir = self.out / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        wanted = args.steps.split(",") if args.steps else (["env", "data", "protocol"] if args.resume else STEPS)
        if "protocol" in wanted:
            wanted = [*wanted, "data"]  # the protocol trains on what the data step loads
        self.steps = [s for s in STEPS if s in wanted]
        self.device = pick_device(args.device, args.dry_run)
        # Called from other code (tests), the budget counts from the call: the module may
        # have been imported long before.
        self.t0 = time.monotonic() if started is None else started
        self.deadline = self.t0 + 60.0 * args.budget_min
        # Known before any step runs: every result, the protocol's history included, names its card.
        hardware = session_steps.hardware_info(self.device)
        self.card = session_steps.card_name(hardware)
        self.proto: dict = {}  # config, data and ACDC root, from the data step
        self.speeds: dict = {}  # s/it of ours in bf16 and compiled, from the speed step
        self.doc = {
            "schema": "crossmatch_lite.gpu_session/1",
            "command": "python benchmarks/gpu_session.py " + " ".join(sys.argv[1:]),
            "dry_run": args.dry_run, "budget_s": round(60.0 * args.budget_min),
            "started": session_protocol.now_iso(), "card": self.card, "hardware": hardware,
            "steps": {s: {"status": "pending" if s in self.steps else "not requested"} for s in STEPS},
        }
        self.save()

    # ---------------------------------------------------------------- bookkeeping
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allowance(self, cap: float) -> float:
        """Seconds a step before the protocol may take: its cap, minus what the protocol keeps."""
        keep = self.args.protocol_share * 60.0 * self.args.budget_min if "protocol" in self.steps else 0.0
        return max(0.0, min(cap, self.left() - keep))

    def save(self) -> None:
        self.doc["updated"] = session_protocol.now_iso()
        self.doc["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        atomic_write_json(self.out / RESULTS_NAME, self.doc)

    def set(self, step: str, result: dict) -> None:
        self.doc["steps"][step] = result
        self.save()

    def run(self, step: str, fn) -> None:
        if step not in self.steps:
            return
        t0 = time.monotonic()
        self.set(step, {"status": "running"})
        print(f"[{time.monotonic() - self.t0:6.1f} s] {step} ...", file=sys.stderr, flush=True)
        try:
            result = fn()
        except Exception as e:
            result = {"status": "error", "error": f"{type(e).__name__}: {e}",
                      "traceback_tail": traceback.format_exc().splitlines()[-8:]}
        result.setdefault("status", "ok")
        result["seconds"] = round(time.monotonic() - t0, 1)
        self.set(step, result)
        print(f"[{time.monotonic() - self.t0:6.1f} s] {step}: {result['status']}", file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- env
    def env(self) -> dict:
        return session_steps.environment(self.device)

    def preflight(self) -> str | None:
        """Why the session stops after the environment report, or None to go on."""
        missing = session_steps.missing_packages()
        if missing:
            # Every later step imports them: stop now rather than spend the budget on errors.
            return f"missing Python packages: {', '.join(missing)}; install them and run again"
        if not torch.cuda.is_available() and not (self.args.dry_run or self.args.allow_cpu):
            return ("no CUDA device (torch.cuda.is_available() is False); --dry-run or --allow-cpu "
                    "to run on the CPU")
        return None

    # ---------------------------------------------------------------- tests
    def tests(self) -> dict:
        results, status = {}, "ok"
        for test_file, select, how in self.plan["tests"]:
            key = Path(test_file).stem
            budget = self.allowance(self.plan["caps"]["tests"])
            if how == "skip":
                results[key] = {"file": test_file, "status": "skipped", "reason": "dry run: runs on its own"}
                continue
            if budget < 10:
                results[key] = {"file": test_file, "status": "skipped", "reason": "budget"}
                continue
            r = session_steps.run_pytest(test_file, self.device.type, budget, select=select,
                                 collect_only=how == "collect", log_dir=self.log_dir)
            results[key] = r
            if r["status"] not in ("passed", "absent", "skipped"):
                status = "failed"
            self.set("tests", {"status": "running", "files": results})
        return {"status": status, "files": results}

    # ---------------------------------------------------------------- data
    def data(self) -> dict:
        args = self.args
        compile_ = self.device.type == "cuda" and args.protocol_compile == "on"
        cfg, resumed = session_protocol.protocol_config(
            self.run_dir, device=str(self.device), threads=self.plan["speed"]["threads"],
            sets=self.plan["protocol_sets"] + args.protocol_set, compile_=compile_, data_root=args.data_root)
        self.proto.update(cfg=cfg, resumed=resumed)
        zip_path = session_steps.acdc_zip(args.acdc_zip)
        result = {"dataset": cfg.data.name, "acdc_zip": str(zip_path) if zip_path else None}
        if cfg.data.name == "acdc":
            timeout = max(30.0, self.allowance(self.plan["caps"]["data"]))
            result["prepare"] = session_steps.prepare_acdc(Path(cfg.data.root), zip_path, timeout=timeout)
        self.proto["data"], result["load"] = session_steps.load_training_data(cfg.data, cfg.train.seed)
        self.proto["acdc_root"] = cfg.data.root if cfg.data.name == "acdc" else None
        return result

    # ---------------------------------------------------------------- speed
    def _bench(self, common: dict, compiled: bool, cap: str, warmup: int) -> dict:
        """One bench_step run in its own process, within what is left of its cap."""
        sp = self.plan["speed"]
        kind = "compile" if compiled else "eager"
        out_json = self.log_dir / f"speed_{self.device.type}_b{sp['batch']}_s{sp['size']}_{kind}.json"
        budget = self.allowance(self.plan["caps"][cap])
        if budget < 10:
            return {"status": "skipped", "reason": "budget"}
        cmd = session_steps.bench_command(out_json, compiled=compiled, warmup=warmup, **common)
        return session_steps.run_bench(cmd, out_json, budget, self.log_dir / f"speed_{kind}.log")

    def speed(self) -> dict:
        sp, args = self.plan["speed"], self.args
        # Real slices when the data step prepared them (the re-created official loop reads one
        # HDF5 file per sample, which is part of what it costs); else, and in a dry run, toy data.
        root = self.proto.get("acdc_root") or (
            args.data_root if not args.dry_run and session_steps.is_prepared(Path(args.data_root)) else None)
        common = dict(device=str(self.device), batch=sp["batch"], size=sp["size"], repeats=sp["repeats"],
                      data="acdc" if root else "toy_acdc", root=root or args.data_root,
                      threads=sp["threads"], sets=sp["sets"], extra=sp.get("extra", []))
        result = {"data": common["data"], "batch": sp["batch"], "size": sp["size"], "repeats": sp["repeats"]}
        result["eager"] = self._bench(common, False, "speed", sp["warmup"])
        self.set("speed", {"status": "running", **result})
        if self.device.type == "cuda":
            result["compiled"] = self._bench(common, True, "speed_compile", sp["compile_warmup"])
        else:
            # Inductor's CPU path builds C++ for minutes and says nothing about CUDA graphs.
            result["compiled"] = {"status": "skipped", "reason": "torch.compile is timed on CUDA only"}
        result["table"] = session_steps.speed_table(result["eager"].get("result"), result["compiled"].get("result"),
                                            self.card)
        result["table_markdown"] = session_steps.markdown(result["table"])
        loops = {r["loop"]: r["s_per_it"] for r in result["table"]}
        self.speeds.update(bf16=loops.get(session_steps.LABELS["ours[bf16]"]),
                           compiled=loops.get(session_steps.LABELS["ours_compiled"]))
        bad = [p for p in ("eager", "compiled") if result[p]["status"] not in ("ok", "skipped")]
        result["status"] = "ok" if not bad else "partial"
        return result

    # ---------------------------------------------------------------- protocol
    def protocol(self) -> dict:
        if "data" not in self.proto:
            raise RuntimeError("the data step failed (see its error); no protocol run without its data")
        args, cfg, sp = self.args, self.proto["cfg"], self.speeds
        if (not self.proto["resumed"] and args.protocol_compile == "auto" and self.device.type == "cuda"
                and sp.get("compiled") and sp.get("bf16") and sp["compiled"] < sp["bf16"]):
            cfg.train.compile = True  # a new run only: compile where the speed step found it faster
        left = self.left()
        if left < self.plan["min_protocol_s"]:
            return {"status": "skipped", "reason": f"{left:.0f} s left of the budget"}
        finish = args.finish_estimate_s if args.finish_estimate_s is not None else self.plan["finish_seconds"]
        return session_protocol.run_protocol(
            cfg, self.run_dir, self.proto["data"], self.deadline, card=self.card,
            s_per_it=sp.get("compiled") if cfg.train.compile else sp.get("bf16"),
            val_seconds=self.plan["val_seconds"], finish_seconds=finish,
            margin=max(5.0, 0.02 * 60.0 * args.budget_min), max_minutes=args.protocol_max_minutes,
            on_progress=lambda p: self.set("protocol", {**p, "status": "running"}))


def main(argv=None, started: float | None = None) -> int:
    args = parse_args(argv)
    session = Session(args, started)
    if args.resume:
        session_protocol.adopt_run(Path(args.resume), session.run_dir)
        session.doc["resumed_from"] = str(Path(args.resume).resolve())
    session.run("env", session.env)
    refuse = session.preflight()
    if refuse:
        for s in session.steps:
            if s != "env":
                session.set(s, {"status": "skipped", "reason": refuse})
        print(f"{refuse}; nothing run beyond the environment report ({session.out / RESULTS_NAME})",
              file=sys.stderr)
        return 2
    for name in ("tests", "data", "speed", "protocol"):
        session.run(name, getattr(session, name))
    failed = any(s.get("status") == "error" for s in session.doc["steps"].values())
    session.doc["finished"] = session_protocol.now_iso()
    session.save()
    print(report(session.doc, session.out))
    return 1 if failed else 0


def report(doc: dict, out: Path) -> str:
    """A short human summary; the JSON has everything."""
    lines = [f"card: {doc['card']}; {doc['elapsed_s']} s of {doc['budget_s']} s; results: {out / RESULTS_NAME}"]
    for name, s in doc["steps"].items():
        lines.append(f"  {name:<9}{s.get('status')}" + (f" ({s['seconds']} s)" if "seconds" in s else "")
                     + (f": {s['error']}" if "error" in s else ""))
    for k, r in doc["steps"]["tests"].get("files", {}).items():
        lines.append(f"    {k}: {r.get('status')} {r.get('counts', '')}")
    if doc["steps"]["speed"].get("table_markdown"):
        lines.append(doc["steps"]["speed"]["table_markdown"])
    p = doc["steps"]["protocol"]
    if "iteration" in p:
        lines.append(f"  protocol: iteration {p['iteration_start']} -> {p['iteration']} of {p['iterations_total']}, "
                     f"best val Dice {p['best_val_dice']:.4f} at {p['best_iteration']}, run folder "
                     f"{p['run_dir']} ({p.get('run_dir_mb')} MB)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(started=T0))
