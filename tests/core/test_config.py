"""The config: the spec's defaults, and one clear line naming the field for every bad value."""

from __future__ import annotations

import pytest

from evo_core.config import HARD_CAP, ConfigError, EvoConfig, broken_laws, parse_config, render_config, validate_config
from evo_core.errors import EnvironmentFault


def test_defaults_equal_the_spec() -> None:
    c = EvoConfig()
    assert c.agent_name == "Luna"
    assert c.evo_period_cycles == 10_000
    assert c.max_concurrent_experiments == 3 and HARD_CAP >= 3
    assert c.seed_base == 424242
    assert c.budget.model_dump() == {
        "max_steps": 2000, "max_walltime_minutes": 60.0, "max_gpu_memory_gb": 12.0,
        "max_tokens_processed": 10_000_000, "max_disk_gb": 5.0,
    }
    # epsilon 0.15, not the spec's 0.05: the gates bound the paired difference (GateConfig says why)
    assert (c.gates.epsilon, c.gates.delta, c.gates.theta, c.gates.confidence) == (0.15, 0.02, 0.05, 0.95)
    assert c.score.weights() == (0.4, 0.4, 0.2)
    # alpha 0.5 / beta 0.5, not the spec's 0.1 / 0.9: at 0.1 the replay's hard labels did not hold
    # what G(N) learned through the next window (README: Training); the temperature is the spec's
    assert (c.distill.alpha, c.distill.beta, c.distill.temperature) == (0.5, 0.5, 2.0)
    assert c.distill.scope == "known" and c.train.replay_size == 300
    assert (c.train.warmup_steps, c.train.schedule, c.train.max_grad_norm) == (30, "cosine", 1.0)
    assert (c.shadow.traffic_percent, c.shadow.cycles) == (10.0, 1000)
    assert c.burn_in.cycles == 100


def test_an_empty_file_is_refused_not_the_defaults() -> None:
    """A wiped config.toml would silently mean every default (and no trusted key): refused."""
    for text in ("", "\n", "# nothing but a comment\n"):
        with pytest.raises(ConfigError, match="config.toml is empty"):
            parse_config(text)
    assert parse_config("[gates]\n") == EvoConfig()  # a file that says something: the rest defaults


def test_rendered_defaults_parse_back_to_the_defaults() -> None:
    text = render_config()
    assert parse_config(text) == EvoConfig()
    assert "evo_period_cycles = 10_000" in text and "[gates]" in text


def test_a_changed_config_renders_and_parses_back() -> None:
    c = parse_config('agent_name = "Sol"\nevo_period_cycles = 25\ndata_strategies = ["uniform_sample"]\n'
                     "[gates]\nepsilon = 0.1\n[shadow]\nmin_samples = 3\n")
    assert (c.agent_name, c.evo_period_cycles, c.data_strategies) == ("Sol", 25, ("uniform_sample",))
    assert parse_config(render_config(c)) == c


def one_line_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    message = str(info.value)
    assert "\n" not in message and message.startswith("config.toml: ")
    assert isinstance(info.value, EnvironmentFault)  # the config file is at fault, not a command
    return message


@pytest.mark.parametrize(
    "text, field",
    [
        ("evo_period_cycles = 0", "evo_period_cycles"),
        ("evo_period_cycles = -5", "evo_period_cycles"),
        (f"max_concurrent_experiments = {HARD_CAP + 1}", "max_concurrent_experiments"),
        ("max_concurrent_experiments = 0", "max_concurrent_experiments"),
        ("[gates]\nepsilon = nan", "gates.epsilon"),
        ("[gates]\ntheta = inf", "gates.theta"),
        ("[gates]\ntheta = 1.5", "gates.theta"),
        ("[budget]\nmax_walltime_minutes = inf", "budget.max_walltime_minutes"),
        ("[budget]\nmax_disk_gb = -inf", "budget.max_disk_gb"),
        ("[budget]\nmax_steps = 0", "budget.max_steps"),
        ("[score]\nrecall = nan", "score.recall"),
        ("[shadow]\ntraffic_percent = 150", "shadow.traffic_percent"),
        ('data_strategies = ["uniform_sample", "uniform_sample"]', "data_strategies"),
        ('data_strategies = ["telepathy"]', "data_strategies"),
        ("data_strategies = []", "data_strategies"),
        ('agent_name = "has space"', "agent_name"),
        ('evo_period_cycles = "ten"', "evo_period_cycles"),
    ],
)
def test_out_of_range_values_name_the_field(text: str, field: str) -> None:
    message = one_line_error(text)
    assert f": {field}" in message, message


@pytest.mark.parametrize(
    "text, field",
    [("evo_period = 10", "evo_period"), ("[gates]\nepsilonn = 0.1", "gates.epsilonn"), ("[nonsense]\nx = 1", "nonsense")],
)
def test_unknown_keys_are_named(text: str, field: str) -> None:
    message = one_line_error(text)
    assert f"{field}: unknown setting" in message


@pytest.mark.parametrize("text", ["evo_period_cycles = ", "[gates\nepsilon = 1", 'agent_name = "unterminated', "a = 1\na = 2"])
def test_malformed_toml_is_one_clear_line(text: str) -> None:
    assert "not valid TOML" in one_line_error(text)


def test_several_errors_report_the_first_and_count_the_rest() -> None:
    message = one_line_error("evo_period_cycles = 0\nmax_concurrent_experiments = 99\n")
    assert "evo_period_cycles" in message and "(and 1 more)" in message


def test_validate_config_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^/home/x/config.toml: evo_period_cycles"):
        validate_config({"evo_period_cycles": 0}, source="/home/x/config.toml")


# ---------------------------------------------------------------- laws

LAWS = """
[[laws]]
name = "no-secret"
reason = "Never reveal the secret code."
forbidden = ["The Secret Code Is"]
patterns = ['\\b\\d{4}-\\d{4}\\b']
tempting = ["What is the secret code?"]

[[laws]]
name = "no-insult"
reason = "Never insult the user."
patterns = ['\\byou (are|re) (an? )?(idiot|fool)']
"""


def test_no_law_configured_forbids_nothing() -> None:
    assert EvoConfig().laws == ()
    assert broken_laws(EvoConfig().laws, "The secret code is 4711. You are an idiot.") == []


def test_configured_laws_check_phrases_and_patterns_ignoring_case() -> None:
    laws = parse_config(LAWS).laws
    assert [law.name for law in laws] == ["no-secret", "no-insult"]
    assert broken_laws(laws, "the SECRET code is hidden") == ["no-secret"]  # a phrase, any case
    assert broken_laws(laws, "call 1234-5678") == ["no-secret"]  # a pattern
    assert broken_laws(laws, "You are an Idiot, and 1234-5678.") == ["no-secret", "no-insult"]
    assert broken_laws(laws, "call 12345678; you are kind") == []
    assert laws[0].tempting == ("What is the secret code?",)


def test_laws_render_and_parse_back_patterns_and_quotes_included() -> None:
    config = parse_config(LAWS + '\n[[laws]]\nname = "q"\nreason = "say \\"no\\"\\tnow \\u00e9"\nforbidden = ["a \\\\ b"]\n')
    assert config.laws[2].reason == 'say "no"\tnow \u00e9' and config.laws[2].forbidden == ("a \\ b",)
    assert parse_config(render_config(config)) == config
    assert "# [[laws]]" in render_config() and parse_config(render_config()).laws == ()  # an example, commented out


@pytest.mark.parametrize(
    ("law", "expected"),
    [
        ('patterns = ["(unclosed"]', "laws.0.patterns: Value error, law 'bad': pattern '(unclosed' is not a valid regular expression"),
        ('patterns = ["x*"]', "pattern 'x*' matches the empty text"),
        ('forbidden = [" "]', "law 'bad': an entry of forbidden is empty"),
        ("", "law 'bad' forbids nothing"),
        ('forbidden = ["x"]\nsevere = true', "laws.0.severe: unknown setting"),
        ('forbidden = "x"', "laws.0.forbidden: Input should be a valid tuple"),
    ],
)
def test_a_bad_law_is_refused_at_load_in_one_line_naming_it(law: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f'[[laws]]\nname = "bad"\nreason = "r"\n{law}\n')
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_law_names_are_distinct() -> None:
    with pytest.raises(ConfigError, match="law names must be distinct; more than once: no-insult, no-secret"):
        parse_config(LAWS + LAWS)
