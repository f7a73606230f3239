"""crossmatch_lite/run/files.py: a write that fails leaves the previous file whole, and no
temporary file behind."""
import json

import pytest
import torch

from crossmatch_lite.run.files import atomic_torch_save, atomic_write_json, atomic_write_text


class FailsMidWrite:
    """Pickled after the tensors before it were written: the write fails half way."""

    def __reduce__(self):
        raise RuntimeError("killed mid-write")


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_torch_save({"iteration": 3}, path)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_torch_save({"w": torch.zeros(1000), "bad": FailsMidWrite()}, path)
    assert torch.load(path, weights_only=True) == {"iteration": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]
    atomic_write_json(tmp_path / "summary.json", {"dice": 0.9})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"dice": 0.9}


def test_writes_create_the_folder_and_replace_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "metrics.jsonl"
    atomic_write_text(path, "first\n" * 100)
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "a" / "latest.pt")
    assert torch.load(tmp_path / "a" / "latest.pt", weights_only=True)["w"].tolist() == [0, 1, 2]
