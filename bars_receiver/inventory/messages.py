"""pydantic's validation errors in the operator's words: file, field, what is wrong, what is right.

The settings model (``settings``) is strict; its errors name pydantic's types and locations. Here
each becomes a ``Problem`` naming the file that supplied the value and the field as the YAML spells
it (``hosts.a.endpoints[0].ods``), says what the setting needs in YAML's words ("a whole number",
not ``int_type``), and points at the likely fix: a quoted number, a YAML 1.1 ``on``/``yes``, or the
setting a misspelt key was meant to be.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from bars_receiver.inventory.errors import Problem
from bars_receiver.inventory.settings import Endpoint, HostEntry, Settings

TOP_LEVEL_KEYS = ("environment", "settings", "hosts")


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problems_from(error: ValidationError, where) -> list[Problem]:
    """``where(loc)`` says which file supplied the value at ``loc`` and the prefix of its path."""
    problems = []
    for item in error.errors():
        file, prefix = where(item["loc"])
        field = format_loc(prefix + tuple(item["loc"]))
        if item["type"] == "extra_forbidden":
            problems.append(Problem(file, field, _unknown_key_message(str(item["loc"][-1]))))
        elif item["type"] == "missing":
            problems.append(Problem(file, field, "is required but missing"))
        elif item["type"] in _TYPES:
            problems.append(Problem(file, field, _type_message(_TYPES[item["type"]], item["input"])))
        else:
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] != "value_error":
                message += f" (got {item['input']!r})"
            problems.append(Problem(file, field, message))
    return problems


# pydantic's strict type errors -> what the setting needs, in YAML's words.
_TYPES = MappingProxyType({"int_type": "a whole number", "string_type": "text", "list_type": "a list", "dict_type": "a mapping",
          "bool_type": "true or false", "float_type": "a number", "int_from_float": "a whole number"})


def _yaml_kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    for kind, name in ((bool, "a boolean"), (int, "a number"), (float, "a decimal number"), (str, "text"),
                       (list, "a list"), (dict, "a mapping")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _type_message(needed: str, value: object) -> str:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    message = f"must be {needed}, but the YAML gives {_yaml_kind(value)}: {shown}; values are never converted"
    if isinstance(value, str) and needed == "a whole number":
        if value.strip().lstrip("+-").isdigit():
            message += f" (write {int(value)} without quotes or leading zeros)"
        elif value.lower() in ("on", "off", "yes", "no", "y", "n"):
            message += " (inventories are read as YAML 1.2, where on/off/yes/no are text, not 1/0)"
    return message


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(_all_field_names()), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown setting {key!r}{hint} (a misspelt key would silently fall back to a default)"


def _all_field_names() -> set[str]:
    names: set[str] = set(TOP_LEVEL_KEYS)
    for model in (Settings, HostEntry, Endpoint):
        names.update(model.model_fields)
    return names
