"""The ``evo_core`` package: no name it exports shadows one of its submodules, so
``from evo_core import reactions`` is the module, and importing it stays cheap (the config
models, pydantic, load only when a config name is asked for)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import evo_core

ROOT = Path(__file__).resolve().parents[2]
SUBMODULES = sorted(m.name for m in pkgutil.iter_modules(evo_core.__path__))

# In a fresh interpreter: once a submodule is imported, Python binds it on the package and a
# shadowing name could hide behind it, so look before anything else imports them.
_PROBE = """
import importlib, json, pkgutil, sys, types
import evo_core

subs = sorted(m.name for m in pkgutil.iter_modules(evo_core.__path__))
config_loaded = "evo_core.config" in sys.modules
exported = set(vars(evo_core)) | set(evo_core.__all__)
shadows = []
for name in sorted(exported & set(subs)):
    value = getattr(evo_core, name, None)  # None: in __all__, imported by `import *`
    if value is not None and not (isinstance(value, types.ModuleType) and value.__name__ == "evo_core." + name):
        shadows.append(f"{name} = {value!r}")
wrong = []
for name in subs:
    scope = {}
    exec(f"from evo_core import {name} as got", scope)
    if scope["got"] is not sys.modules["evo_core." + name]:
        wrong.append(name)
print(json.dumps({"config_loaded": config_loaded, "shadows": shadows, "wrong": wrong}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_the_package_lists_its_submodules() -> None:
    assert {"decide", "evolve", "reactions", "transitions", "window", "gates", "config"} <= set(SUBMODULES)


def test_no_exported_name_shadows_a_submodule() -> None:
    result = _probe()
    assert result["shadows"] == []  # e.g. the function ``reactions`` bound as ``evo_core.reactions``
    assert result["wrong"] == []  # ``from evo_core import X`` gave something other than the module
    assert result["config_loaded"] is False  # the heartbeat's import budget


def test_every_exported_name_resolves_and_none_is_a_submodule_s() -> None:
    for name in evo_core.__all__:
        value = getattr(evo_core, name)  # the lazy config names too
        if name in SUBMODULES:
            assert getattr(value, "__name__", None) == f"evo_core.{name}", name

