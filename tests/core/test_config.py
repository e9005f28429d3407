"""The config: the spec's defaults, and one clear line naming the field for every bad value."""

from __future__ import annotations

import pytest

from evo_core.config import HARD_CAP, ConfigError, EvoConfig, parse_config, render_config, validate_config
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
