import os
import sys
from pathlib import Path

import pytest
import torch

# Let tests import helpers such as sample_data and killing from this folder.
sys.path.insert(0, str(Path(__file__).parent))
# Two intra-op threads for every test (CI has two cores), one per worker when pytest-xdist
# runs the suite in two processes (`-n 2`), so that the workers do not fight over the cores.
# The fixture below puts this back after any test that changes it (a Trainer sets
# train.threads), so a result never depends on which test ran before: the order of
# floating-point reductions follows the thread count.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
torch.set_num_threads(THREADS)

# Tests that run the tutorial notebooks in smoke mode write the same run folders
# (runs/smoke/<notebook>, started afresh each time): nbval's runs of notebooks/, the smoke
# book build, JupyterLab's run of notebook 02 and the notebook-setup tests. Under pytest-xdist
# (`-n 2`) they run on one worker, one after another, and nbval's cells of a notebook in one
# kernel; every other test file is a unit of its own, so its module fixtures are built once.
NOTEBOOK_RUNNERS = {"test_browser.py", "test_notebooks_clean.py"}


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: without it the suite runs serially
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            if file.endswith(".ipynb") or Path(file).name in NOTEBOOK_RUNNERS:
                return "notebooks"
            return file

    return NotebooksTogether(config, log)


@pytest.fixture
def suite_threads() -> int:
    """The intra-op thread count every test starts with."""
    return THREADS


@pytest.fixture(autouse=True)
def restore_torch_process_state():
    """Process-wide torch settings as every test found them: thread count, default dtype,
    the global random generator, grad mode, deterministic algorithms and float32 matmul
    precision. A Trainer (or a test) may change any of them; the next test must not see it."""
    saved = (torch.get_default_dtype(), torch.get_rng_state(), torch.is_grad_enabled(),
             torch.are_deterministic_algorithms_enabled(), torch.get_float32_matmul_precision(),
             torch.backends.mkldnn.enabled)
    yield
    torch.set_num_threads(THREADS)
    torch.set_default_dtype(saved[0])
    torch.set_rng_state(saved[1])
    torch.set_grad_enabled(saved[2])
    torch.use_deterministic_algorithms(saved[3])
    torch.set_float32_matmul_precision(saved[4])
    torch.backends.mkldnn.enabled = saved[5]
