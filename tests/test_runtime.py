"""CPU threads follow the cores other processes leave free (train.threads=0); train.amp=auto
takes bf16 exactly where the CPU has native bf16, and says so."""
import json

import pytest
import torch

import crossmatch_lite.run.runtime as runtime
from crossmatch_lite.config import load_config
from crossmatch_lite.run.runtime import FreeCores
from crossmatch_lite.train import train


class Machine:
    """A played two-core machine: the clock and the CPU seconds FreeCores reads."""

    def __init__(self):
        self.now, self.busy, self.own = 0.0, 0.0, 0.0

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        """`seconds` pass with this process using `own_cores` and others `other_cores`."""
        self.now += seconds
        self.own += own_cores * seconds
        self.busy += (own_cores + other_cores) * seconds


@pytest.fixture
def machine(monkeypatch):
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    return Machine()


def follower(m: Machine) -> FreeCores:
    return FreeCores(every=5.0, clock=lambda: m.now, sample=lambda: (m.busy, m.own))


def test_an_idle_machine_keeps_one_thread_per_core(machine):
    f = follower(machine)
    assert f.threads == 2 == torch.get_num_threads()
    machine.run(6, own_cores=2.0, other_cores=0.2)  # a browser's worth of other work
    assert f.update() == 2


def test_a_busy_core_takes_a_thread_away_and_gives_it_back(machine):
    f = follower(machine)
    # Two threads and one other busy process: three runnable threads share two cores.
    machine.run(6, own_cores=4 / 3, other_cores=2 / 3)
    assert f.update() == 1 == torch.get_num_threads()
    machine.run(6, own_cores=1.0, other_cores=1.0)  # one thread on the free core: stays
    assert f.update() == 1
    machine.run(6, own_cores=1.0, other_cores=0.0)  # the other process ended
    assert f.update() == 2 == torch.get_num_threads()


def test_never_fewer_than_one_thread_and_not_between_measurements(machine):
    f = follower(machine)
    machine.run(4, own_cores=1.0, other_cores=2.0)
    assert f.update() == 2  # 4 s < every: nothing measured yet
    machine.run(2, own_cores=1.0, other_cores=2.0)
    assert f.update() == 1


def test_the_real_machine_is_measured_without_error():
    f = FreeCores(every=0.0)
    sum(range(200_000))  # some CPU time of our own to subtract
    assert 1 <= f.update() <= runtime.available_cores()


def test_a_run_with_threads_0_logs_its_thread_count(tmp_path):
    sets = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "train.progress=false",
            "model.channels=[4,8,16,32,64]", "eval.distances=false", "train.log_every=1",
            "train.iterations=2", "train.val_every=2", "train.tensorboard=false", "eval.precise_bn_batches=0"]
    auto = train(load_config("configs/supervised.yaml", sets), tmp_path / "auto")
    one = train(load_config("configs/supervised.yaml", [*sets, "train.threads=1", "train.amp=off"]), tmp_path / "one")
    rows = lambda run: [json.loads(ln) for ln in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert all(1 <= r["threads"] <= runtime.available_cores() for r in rows("auto") if "loss" in r)
    assert not any("threads" in r for r in rows("one"))  # a fixed count is in config.yaml
    # What amp resolved to is in the summary, with its reason.
    bf16, why = runtime.precision(torch.device("cpu"), load_config("configs/supervised.yaml", sets).train)
    assert (auto["precision"], auto["precision_why"]) == ("bf16" if bf16 else "fp32", why)
    assert (one["precision"], one["precision_why"]) == ("fp32", "train.amp=off")
    assert auto["channels_last"] is True


@pytest.mark.parametrize("flags, bf16, named", [
    ({"avx2", "avx512f"}, False, "no native bf16"),        # AVX-512F alone: bf16 is emulated
    ({"avx2"}, False, "no native bf16"),
    ({"avx512f", "avx512_bf16"}, True, "AVX512-BF16"),
    ({"avx512f", "avx512_bf16", "amx_bf16"}, True, "AVX512-BF16, AMX"),
    (set(), False, "no native bf16"),                       # no /proc/cpuinfo (macOS, Windows)
])
def test_amp_auto_takes_bf16_only_on_cpus_with_native_bf16(monkeypatch, flags, bf16, named):
    from crossmatch_lite.config import TrainConfig
    monkeypatch.setattr(runtime, "cpu_info", lambda: ("a CPU", flags))
    got, why = runtime.precision(torch.device("cpu"), TrainConfig(amp="auto"))
    assert got is bf16 and named in why and why.startswith("train.amp=auto")
    assert isinstance(runtime.autocast_for(torch.device("cpu"), TrainConfig(amp="auto")), torch.autocast) is bf16
    # An explicit choice is kept whatever the CPU.
    assert runtime.precision(torch.device("cpu"), TrainConfig(amp="bf16")) == (True, "train.amp=bf16")
    assert runtime.precision(torch.device("cpu"), TrainConfig(amp="off")) == (False, "train.amp=off")


def test_the_machine_line_names_the_bf16_instructions(monkeypatch):
    from crossmatch_lite.tutorial.results import machine
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(runtime, "cpu_info", lambda: ("Intel(R) Xeon(R)", {"avx512f", "avx512_bf16", "amx_bf16"}))
    assert machine() == "Intel(R) Xeon(R) (AVX512-BF16, AMX), 2 cores"
    monkeypatch.setattr(runtime, "cpu_info", lambda: ("AMD EPYC", {"avx512f"}))
    assert machine() == "AMD EPYC (no AVX512-BF16, no AMX), 2 cores"


@pytest.mark.parametrize("patch, bf16", [
    ((32, 32, 16), False),   # toy LA: 2 voxels along X at the VNet's fifth level
    ((16, 16, 16), False),   # 2 at the fourth
    ((48, 48, 32), True),    # la_cpu: 3 at the fifth
    ((112, 112, 80), True),  # the official LA patch
    (None, True),            # 2D
])
def test_amp_auto_keeps_fp32_where_bf16_3d_convolutions_are_undefined(monkeypatch, patch, bf16):
    from crossmatch_lite.config import TrainConfig
    monkeypatch.setattr(runtime, "cpu_info", lambda: ("a CPU", {"avx512f", "avx512_bf16"}))
    got, why = runtime.precision(torch.device("cpu"), TrainConfig(amp="auto"), patch)
    assert got is bf16 and ("2 voxels deep" in why) is (not bf16)
    # An explicit bf16 is the user's choice, kept.
    assert runtime.precision(torch.device("cpu"), TrainConfig(amp="bf16"), patch) == (True, "train.amp=bf16")


def test_a_toy_3d_run_under_amp_auto_repeats_exactly(tmp_path):
    """On a CPU with native bf16, oneDNN's bf16 Conv3d backward fills the weight gradient of
    a feature map 2 voxels deep with memory it never wrote (toy LA's patch meets one): two
    runs of one seed then differ after the first step, and now and then diverge. amp=auto
    keeps such a run in fp32, so a run repeats whatever the allocator held before it (here
    large junk values, as in a process that has been busy)."""
    from crossmatch_lite.train import train
    sets = ["train.iterations=1", "train.val_every=1", "train.threads=1", "train.progress=false",
            "train.tensorboard=false", "eval.distances=false", "eval.precise_bn_batches=0"]

    def weights(run):
        junk = [torch.full((1 << 16,), 1e30) for _ in range(64)]
        del junk
        train(load_config("configs/toy_la.yaml", sets), tmp_path / run)
        return torch.load(tmp_path / run / "latest.pt", weights_only=True)["model"]

    first, second = weights("first"), weights("second")
    assert [k for k in first if not torch.equal(first[k], second[k])] == []
