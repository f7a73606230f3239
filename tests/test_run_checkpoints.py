"""crossmatch_lite/run/checkpoints.py: checkpoints load without running code, bad ones are
refused in one line, and a run's network is rebuilt from its config and weights alone."""
import pytest
import torch

from crossmatch_lite.config import load_config, save_config
from crossmatch_lite.models import build_model
from crossmatch_lite.run.checkpoints import CheckpointError, load_checkpoint, load_model, load_weights

TINY = ["model.channels=[2,4,8,16,32]"]


class Payload:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_pickle_payload_is_not_run_and_a_torn_file_is_named(tmp_path, capsys):
    torch.save({"model": {}, "extra": Payload()}, tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="holds objects other than tensors") as e:
        load_checkpoint(tmp_path / "best.pt")
    assert "this ran" not in capsys.readouterr().out and "\n" not in str(e.value)
    (tmp_path / "latest.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"truncated .*it is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "latest.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize("preset, shape", [("configs/crossmatch.yaml", (1, 3, 32, 32)),
                                           ("configs/la.yaml", (1, 3, 16, 16, 16))])
def test_load_model_rebuilds_the_network_from_config_and_weight_shapes(tmp_path, preset, shape):
    cfg = load_config(preset, TINY)
    torch.manual_seed(0)
    net = build_model(cfg.model, 3, 5).eval()  # 3 input channels, 5 classes: read back from the weights
    save_config(cfg, tmp_path / "config.yaml")
    torch.save({"model": net.state_dict()}, tmp_path / "best.pt")
    again = load_model(tmp_path)
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(again(x), net(x)) and again(x).shape[1] == 5


def test_weights_of_another_network_are_refused_in_one_line():
    cfg = load_config("configs/crossmatch.yaml", TINY)
    net = build_model(cfg.model, 1, 4)
    other = build_model(cfg.model, 1, 2).state_dict()
    with pytest.raises(CheckpointError, match=r"^run/best.pt does not fit this run's network \(unet, 4 classes\): "
                                              r"size mismatch for head.weight") as e:
        load_weights(net, other, "run/best.pt", "unet, 4 classes")
    assert "\n" not in str(e.value)
