"""The config tree: YAML, dotted overrides, and refusals that explain themselves."""
from pathlib import Path

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


def test_docs_keys_table_is_the_one_derived_from_the_fields():
    """Each key is declared once, on its field; the docs table is generated from it."""
    from crossmatch_lite.config import keys_table

    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    table = text.split("<!-- keys:start", 1)[1].split("-->", 1)[1].split("<!-- keys:end -->")[0]
    assert table.strip() == keys_table().strip(), \
        "docs/configuration.md is stale: paste `python -m crossmatch_lite keys --markdown` between its markers"


def test_every_key_has_a_doc_and_choices_come_from_the_type():
    from crossmatch_lite.config import CHOICES, KEYS, RANGES

    assert all(f.metadata.get("doc") for _, f in KEYS.values())
    assert CHOICES["distill.mode"] == ("hard", "soft") and "la" in CHOICES["data.name"]
    assert RANGES["pseudo.conf_thresh"].hi == 1 and not set(CHOICES) & set(RANGES)


@pytest.mark.parametrize("preset", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")))
def test_presets_list_only_what_differs_from_their_base(preset):
    """A preset states how it differs from the defaults (or from the preset it extends):
    a key set to its base's value is noise that hides what the preset is about."""
    from crossmatch_lite.config import flatten, to_dict, yaml_load

    configs = Path(__file__).resolve().parents[1] / "configs"
    data = yaml_load((configs / preset).read_text()) or {}
    base_file = data.pop("extends", None)
    base = flatten(to_dict(load_config(configs / base_file) if base_file else Config()))
    ours = flatten(to_dict(load_config(configs / preset)))
    assert [k for k in flatten(data) if ours[k] == base[k]] == []


def test_every_dataset_of_the_config_has_a_loader():
    from crossmatch_lite.config import DATASET_DIMS
    from crossmatch_lite.data import LOADERS

    assert set(LOADERS) == set(DATASET_DIMS)
