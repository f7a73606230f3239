"""The config tree: YAML, dotted overrides, and refusals that explain themselves."""
import pytest
import yaml

from crossmatch_lite.config import Config, ConfigError, load_config, save_config, valid_keys


def test_override_sets_typed_values():
    cfg = load_config("configs/crossmatch.yaml", ["distill.eta=0.5", "train.iterations=7",
                                                  "perturb.feature.strong_rate=null", "data.name=toy_acdc"])
    assert cfg.distill.eta == 0.5 and isinstance(cfg.train.iterations, int) and cfg.train.iterations == 7
    assert cfg.perturb.feature.strong_rate is None and cfg.data.name == "toy_acdc"


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config("configs/crossmatch.yaml", ["distill.etaa=0.3"])
    msg = str(e.value)
    assert "distill.etaa" in msg and "distill.eta" in msg and "train.iterations" in msg


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  iteratons: 5\n")
    with pytest.raises(ConfigError, match="bad.yaml.*train.iteratons"):
        load_config(p)


@pytest.mark.parametrize("override, fragment", [
    ("train.iterations=1.5", "integer"),
    ("distill.enabled=maybe", "true or false"),
    ("distill.mode=medium", "hard, soft"),
    ("distill.eta=1.5", "[0, 1]"),
    ("data.size=100", "multiple of 16"),
    ("distill.eta", "key=value"),
])
def test_bad_values_are_refused_with_reason(override, fragment):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert fragment in str(e.value)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("configs/unimatch.yaml", ["train.seed=3"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["preset"] == "unimatch"


def test_every_switch_named_in_the_issue_exists():
    keys = set(valid_keys())
    for k in ["perturb.image.enabled", "perturb.image.strong_views", "perturb.image.color_jitter",
              "perturb.image.blur", "perturb.image.cutmix", "perturb.image.cutmix_source",
              "perturb.feature.enabled", "perturb.feature.weak_rate", "perturb.feature.strong_rate",
              "distill.enabled", "distill.teacher_terms", "distill.cross_terms", "distill.eta",
              "distill.mode", "distill.temperature", "pseudo.conf_thresh", "pseudo.threshold_schedule",
              "data.name", "data.root", "data.labeled", "data.size", "train.iterations",
              "train.batch_size", "train.seed", "train.device"]:
        assert k in keys, k
    assert Config().train.device == "auto"
