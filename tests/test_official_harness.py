"""benchmarks/official.py: the official code is importable inside the block and gone after it.

A stand-in checkout (two namespace packages with the official code's common names) replaces
AiEson/CrossMatch here; the real one is only needed by the benchmarks that run it.
"""
import sys
import types

import pytest
import torch

from benchmarks.official import hand_in_vnet, official_code


@pytest.fixture
def checkout(tmp_path):
    code = tmp_path / "CrossMatch" / "LA" / "code"
    (code / "utils").mkdir(parents=True)
    (code / "networks").mkdir()
    (code / "utils" / "losses.py").write_text("WHO = 'official'\n")
    (code / "networks" / "vnet.py").write_text(
        "import torch\n"
        "class VNet(torch.nn.Module):\n"
        "    def __init__(self, n_filters=16):\n"
        "        super(VNet, self).__init__()\n"
        "        self.n_filters = n_filters\n")
    (code / "train.py").write_text("from tensorboardX import SummaryWriter\nfrom networks.vnet import VNet\n"
                                   "net = VNet().cuda()\nSummaryWriter('x').add_scalar('a', 1, 0)\n")
    return code


def test_official_modules_are_isolated_and_removed(checkout, monkeypatch):
    ours = types.ModuleType("utils")  # a module of the same name imported before the block
    monkeypatch.setitem(sys.modules, "utils", ours)
    cuda = torch.Tensor.cuda
    with official_code(checkout) as load:
        assert load("utils.losses").WHO == "official"
        assert sys.modules["utils"] is not ours
        assert torch.zeros(1).cuda().device.type == "cpu"  # .cuda() is a no-op inside
    assert sys.modules["utils"] is ours
    assert not any(k.split(".")[0] in {"networks", "train", "tensorboardX"} or k == "utils.losses"
                   for k in sys.modules)
    assert str(checkout) not in sys.path and torch.Tensor.cuda is cuda


def test_a_script_gets_the_handed_in_network(checkout):
    import runpy
    with official_code(checkout) as load:
        vnet = load("networks.vnet")

        class Narrow(vnet.VNet):
            def __init__(self, *a, **k):
                super().__init__(n_filters=4)

        hand_in_vnet(vnet, Narrow)
        g = runpy.run_path(str(checkout / "train.py"))
    assert type(g["net"]).__name__ == "Narrow" and g["net"].n_filters == 4
    assert "networks.vnet" not in sys.modules


def test_a_missing_checkout_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="AiEson/CrossMatch"):
        with official_code(tmp_path / "nowhere"):
            pass
