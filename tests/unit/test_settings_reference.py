"""The README's settings reference, group_data/all.py and the settings model say the same thing.

Why a test: types and limits live in bars_receiver/inventory/settings.py, defaults in group_data/all.py and
prose in the README. Nothing else keeps them in step, so a renamed setting, a changed default or
a new field without documentation fails here instead of misleading an operator.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
import yaml
from pydantic_core import PydanticUndefined

from bars_receiver.inventory.settings import Endpoint, HostEntry, Settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
REFERENCE = README[README.index("## Inventory settings"):README.index("## What is checked before any host is touched")]


def _group_data(name: str) -> dict:
    return {k: v for k, v in runpy.run_path(str(REPO / "group_data" / f"{name}.py")).items() if not k.startswith("_")}


def _shown() -> tuple[dict[str, object], set[str]]:
    """``key: value`` as the reference's YAML examples show it (the first showing of each key), and
    the keys whose example is marked ``# required`` (an example value, not a default)."""
    shown: dict[str, object] = {}
    required: set[str] = set()
    for block in re.findall(r"```yaml\n(.*?)```", REFERENCE, re.S):
        for line in block.splitlines():
            matched = re.match(r"\s*([a-z_0-9]+):\s*(.*?)\s*(#.*)?$", line)
            if matched and matched.group(2) and matched.group(1) not in shown:
                shown[matched.group(1)] = yaml.safe_load(matched.group(2))
                if (matched.group(3) or "").startswith("# required"):
                    required.add(matched.group(1))
    return shown, required


DEFAULTS = _group_data("all")
SHOWN, REQUIRED = _shown()
ENVIRONMENTS = {name: _group_data(name) for name in ("int", "prod")}


def test_every_default_is_a_setting():
    assert sorted(set(DEFAULTS) - set(Settings.model_fields)) == []


@pytest.mark.parametrize("name", sorted(set(Settings.model_fields) - {"environment"}))
def test_every_setting_has_a_value_and_is_documented(name):
    assert name in DEFAULTS or all(name in data for data in ENVIRONMENTS.values()), \
        f"{name}: no default in group_data/all.py and not set by every environment's group data"
    assert f"`{name}`" in REFERENCE, f"{name}: not described in README 'Inventory settings'"


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_the_reference_shows_each_default_as_group_data_has_it(name):
    assert name in SHOWN, f"{name}: README 'Inventory settings' shows no YAML example of it"
    assert SHOWN[name] == DEFAULTS[name], f"{name}: README shows {SHOWN[name]!r}, group_data/all.py has {DEFAULTS[name]!r}"


@pytest.mark.parametrize("model, name", [(m, n) for m in (Endpoint, HostEntry) for n in m.model_fields])
def test_endpoint_and_host_keys_are_documented_with_their_defaults(model, name):
    field = model.model_fields[name]
    assert f"`{name}`" in REFERENCE or name == "endpoints", f"{model.__name__}.{name}: not described in the README"
    if field.default is not PydanticUndefined and name not in REQUIRED:
        assert SHOWN.get(name) == field.default, \
            f"{model.__name__}.{name}: README shows {SHOWN.get(name)!r}, the model's default is {field.default!r}"
