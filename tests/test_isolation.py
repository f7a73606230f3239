"""No test sees what an earlier one changed in torch's process-wide state (conftest.py's
fixture): the LA replay once failed on one CPU only when a 3D training test, which sets
one thread, had run before it. These two run in file order; the second checks the first
left nothing behind."""
import torch


def test_a_test_may_change_process_wide_torch_settings(suite_threads):
    torch.set_num_threads(1 if suite_threads > 1 else 2)
    torch.set_default_dtype(torch.float64)


def test_the_next_test_finds_them_as_the_suite_set_them(suite_threads):
    assert torch.get_num_threads() == suite_threads
    assert torch.get_default_dtype() == torch.float32
