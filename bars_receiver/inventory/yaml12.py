"""Inventory YAML read with the YAML 1.2 core schema, within bounds.

Why: PyYAML implements YAML 1.1, where ``on``/``yes`` are booleans, ``0443`` is octal (291),
``1:30`` is sexagesimal and ``2026-01-01`` a date: a port or a day count could silently become
another number. Here a plain scalar is only ``null``/``true``/``false`` (the 1.2 spellings), a
decimal integer without leading zeros, ``0x``/``0o`` integers, or a float; everything else is a
string, and the settings model (strict) refuses a string where a number is needed.

Also refused, each as a message rather than a traceback: a file over ``MAX_BYTES``, bytes that
are not UTF-8, nesting deeper than ``MAX_DEPTH``, aliases (``*name``: an inventory needs none, and
they are how a small file expands into a huge one), merge keys (``<<``, not part of YAML 1.2)
and a key given twice.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 20
# Digits in one number: no setting needs more (and Python refuses to convert over 4300).
MAX_NUMBER_TEXT = 64


class YamlProblem(ValueError):
    """What is wrong with the file as a whole, worded for the operator."""


class _CoreResolver(yaml.resolver.BaseResolver):
    pass


_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# Leading zeros are left as strings: YAML 1.2 reads 0443 as 443, YAML 1.1 as 291; neither guess is safe.
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


class _CoreConstructor(yaml.constructor.SafeConstructor):
    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if len(text) > MAX_NUMBER_TEXT:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of {len(text)} characters is too long to read; no setting needs more "
                f"than {MAX_NUMBER_TEXT}", node.start_mark)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)

    def construct_yaml_bool(self, node):
        return self.construct_scalar(node).lower() == "true"

    def construct_mapping(self, node, deep=False):
        # PyYAML keeps the last of two equal keys: a host listed twice would silently vanish.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value, not a list or mapping", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {seen[key] + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node):  # no YAML 1.1 merge keys
        pass


_CoreConstructor.yaml_constructors = dict(yaml.constructor.SafeConstructor.yaml_constructors)
for _tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary", "tag:yaml.org,2002:omap",
             "tag:yaml.org,2002:pairs", "tag:yaml.org,2002:set", "tag:yaml.org,2002:value",
             "tag:yaml.org,2002:merge"):
    _CoreConstructor.yaml_constructors.pop(_tag, None)
_CoreConstructor.add_constructor("tag:yaml.org,2002:int", _CoreConstructor.construct_yaml_int)
_CoreConstructor.add_constructor("tag:yaml.org,2002:bool", _CoreConstructor.construct_yaml_bool)


class _Composer(yaml.composer.Composer):
    """Counts nesting as it composes, and refuses aliases."""

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if getattr(event, "tag", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"the tag {event.tag!r} is not allowed in an inventory; write plain values",
                event.start_mark)
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} is not allowed in an inventory; write the value out",
                event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels; an inventory needs at most 6",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class CoreLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _Composer,
                 _CoreConstructor, _CoreResolver):
    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Composer.__init__(self)
        _CoreConstructor.__init__(self)
        _CoreResolver.__init__(self)


def loads(text: str) -> Any:
    """Parse one YAML document with ``CoreLoader``; ``YamlProblem`` on any failure."""
    try:
        return yaml.load(text, Loader=CoreLoader)
    except yaml.YAMLError as error:
        raise YamlProblem(" ".join(f"is not valid YAML: {error}".split())) from None
    except RecursionError:
        raise YamlProblem(f"is nested too deeply to read (more than {MAX_DEPTH} levels)") from None
    except (ValueError, OverflowError):  # e.g. an integer of thousands of digits
        raise YamlProblem("holds a number too long to read (over 4300 digits); no setting needs one") from None


def load_file(path: Path) -> Any:
    """Read ``path`` (bounded, UTF-8) and parse it; ``FileNotFoundError`` passes through."""
    with path.open("rb") as stream:
        data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlProblem(f"is larger than {MAX_BYTES // 1024} KiB; an inventory is a few KiB of YAML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise YamlProblem(
            f"is not UTF-8: byte 0x{data[error.start]:02x} on line {line} (offset {error.start}); "
            "save the file as UTF-8"
        ) from None
    return loads(text)
