"""crossmatch_lite/run/files.py: a write that fails leaves the previous file whole, and no
temporary file behind."""
import json

import pytest
import torch

from crossmatch_lite.run.files import atomic_torch_save, atomic_write_json, atomic_write_text


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"dice": 0.9})

    class Unserialisable:
        def __str__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_write_json(path, {"dice": Unserialisable()})
    assert json.loads(path.read_text()) == {"dice": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_writes_create_the_folder_and_replace_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "metrics.jsonl"
    atomic_write_text(path, "first\n" * 100)
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "a" / "latest.pt")
    assert torch.load(tmp_path / "a" / "latest.pt", weights_only=True)["w"].tolist() == [0, 1, 2]
