"""Fuzzing `--set`: random keys and values, valid or not, through load_config and
through the command line's parse path. Whatever comes in, the answer is a config or a
ConfigError of one line; never a traceback. No training runs (train() is replaced)."""
import contextlib
import io
from unittest import mock

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossmatch_lite.__main__ as cli_mod
from crossmatch_lite.__main__ import main
from crossmatch_lite.config import Config, ConfigError, load_config, valid_keys

KEYS = valid_keys()
SECTIONS = sorted({k.rsplit(".", 1)[0] for k in KEYS if "." in k})

keys = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(SECTIONS),
    st.sampled_from(KEYS).map(lambda k: k[:-1] if len(k) > 1 else k + "x"),  # typos
    st.sampled_from(["__class__.preset", "train..lr", ".lr", "train.", "", " ", "data.name.x", "a=b"]),
    st.text(max_size=12),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10))
python_values = st.one_of(scalars, st.lists(scalars, max_size=6),
                          st.dictionaries(st.text(max_size=5), scalars, max_size=3))
yaml_garbage = st.sampled_from([
    "[1,", "{a: b", ": :", "!!python/object/apply:os.system ['true']", "&a [*a]", "'unterminated",
    "1e-3", "-1E5", ".5e-2", "null", "~", "yes", "off", "[1e-3, 2]", "\t", "- a\n- b", "%YAML 9",
    "@", "`", "0x1F", "0o17", "1_000", ".nan", "-.inf", "2001-12-14", "{}", "[]", "[[1, 2], 3]",
])


def render(v) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


raw_values = st.one_of(python_values.map(render), yaml_garbage, st.text(max_size=15))
overrides = st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", keys, raw_values), st.text(max_size=10)),
                     min_size=1, max_size=4)

# No example database: the test leaves nothing behind in the checkout.
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line(e: ConfigError) -> None:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg, msg


@FUZZ
@given(overrides)
def test_load_config_accepts_or_refuses_in_one_line(sets):
    try:
        cfg = load_config(None, sets)
    except ConfigError as e:
        _one_line(e)
    else:
        assert isinstance(cfg, Config)
    assert Config().preset == "crossmatch"  # nothing leaked into the class defaults


class _FakeTrainer:
    """Stands in for the Trainer: the fuzz is about the config, not about training."""
    iteration_saved = 0

    def __init__(self, cfg, out, data=None, on_log=None):
        pass

    def run(self):
        return {"val": {"n_cases": 0}, "test": {"n_cases": 0}}


@FUZZ
@given(overrides)
def test_cli_set_never_shows_a_traceback(sets):
    argv = ["train", "--config", "configs/crossmatch.yaml", "--out", "/nonexistent/fuzz-run"]
    for s in sets:
        argv.append(f"--set={s}")  # the = form: a value starting with "-" is not an option
    err = io.StringIO()
    with mock.patch.object(cli_mod, "Trainer", _FakeTrainer), contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text = err.getvalue().strip()
    if code == 0:
        assert text == "" or text.startswith("warning:"), text
    else:
        assert code == 2 and len(text.splitlines()) == 1 and text.startswith("config error:"), text
