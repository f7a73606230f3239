import os
import sys
from pathlib import Path

import pytest
import torch

# Let tests import helpers such as sample_data and killing from this folder.
sys.path.insert(0, str(Path(__file__).parent))
# Two intra-op threads for every test (CI has two cores). The fixture below puts this back
# after any test that changes it (a Trainer sets train.threads), so a result never depends
# on which test ran before: the order of floating-point reductions follows the thread count.
THREADS = max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(THREADS)



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
