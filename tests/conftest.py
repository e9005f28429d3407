"""Fixtures shared by every test folder, registered once so that session fixtures are built
once per session (see ``tests/fixtures_models.py``: the demo genesis, built by `evo init --demo`)."""

from tests.fixtures_models import demo_genesis, demo_model, demo_workspace  # noqa: F401
