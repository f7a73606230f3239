"""crossmatch_lite/switches.py: every term a switch asks for and another switch removes is named."""
import pytest

from crossmatch_lite.config import Config
from crossmatch_lite.switches import contradiction_warning, dropped_terms


def cfg_with(**sets) -> Config:
    cfg = Config()
    for key, value in sets.items():
        section, *mid, leaf = key.split("__")
        obj = getattr(cfg, section)
        for m in mid:
            obj = getattr(obj, m)
        setattr(obj, leaf, value)
    return cfg


def test_the_default_preset_drops_nothing():
    assert dropped_terms(Config()) == [] and contradiction_warning(Config()) is None


@pytest.mark.parametrize("sets, dropped", [
    ({"perturb__feature__enabled": False},
     ["distillation terms a-d (distill.teacher_terms is on but perturb.feature.enabled is off)",
      "cross distillation terms e-f (distill.cross_terms is on but perturb.feature.enabled is off)"]),
    ({"perturb__image__strong_views": 0},
     ["image consistency L_s (perturb.image.enabled is on but perturb.image.strong_views is 0)",
      "CutMix (no strong views to paste into)",
      "cross distillation terms e-f (distill.cross_terms is on but there are no strong views)"]),
    ({"perturb__feature__on_strong_view": False},
     ["cross distillation terms e-f (distill.cross_terms is on but perturb.feature.on_strong_view is off)"]),
    ({"distill__teacher_terms": False, "distill__cross_terms": False},
     ["all distillation (distill.enabled is on but teacher_terms and cross_terms are off)",
      "feature perturbation (perturb.feature.enabled is on but no distillation term uses it)"]),
    ({"distill__enabled": False},
     ["feature perturbation (perturb.feature.enabled is on but no distillation term uses it)"]),
])
def test_each_contradiction_names_the_terms_it_drops(sets, dropped):
    cfg = cfg_with(**sets)
    assert dropped_terms(cfg) == dropped
    assert contradiction_warning(cfg) == ("warning: switches contradict each other, so these are dropped: "
                                          + "; ".join(dropped))
