"""CPU threads follow the cores other processes leave free (train.threads=0)."""
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
    train(load_config("configs/supervised.yaml", sets), tmp_path / "auto")
    train(load_config("configs/supervised.yaml", [*sets, "train.threads=1"]), tmp_path / "one")
    rows = lambda run: [json.loads(ln) for ln in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert all(1 <= r["threads"] <= runtime.available_cores() for r in rows("auto") if "loss" in r)
    assert not any("threads" in r for r in rows("one"))  # a fixed count is in config.yaml
