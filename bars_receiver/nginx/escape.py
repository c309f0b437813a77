"""Escaping at the point of rendering nginx configuration: defence in depth behind the inventory's
grammar. Whatever a value holds, it cannot add, close or change a directive or a block.

Two kinds of value reach the template:

- tokens (FQDNs, file paths, URL paths, addresses): only a conservative set of characters is
  accepted, because nginx expands ``$`` in most arguments and no quoting stops that;
- map keys (client DNs): quoted, with ``"`` and ``\\`` escaped, and prefixed with a backslash so
  that nginx's ``map`` compares the text exactly: a key beginning ``~`` would otherwise be a
  regular expression, and ``default``/``hostnames``/``include``/``volatile`` special words.

Control characters are refused in both: nginx has no escape for them that keeps a line a line.
"""

from __future__ import annotations

import re
from types import MappingProxyType

# No ';', '{', '}', '$', quotes, backslash, '#', whitespace or control characters.
_TOKEN = re.compile(r"[A-Za-z0-9._~:/@+%=,\[\]-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class UnsafeValue(ValueError):
    """A value the renderer will not put into nginx configuration."""


def nginx_token(value: object) -> str:
    """A bare nginx argument: only characters that mean nothing to nginx's parser or variables."""
    text = str(value)
    if not _TOKEN.fullmatch(text):
        raise UnsafeValue(
            f"{text!r} cannot be written into the nginx configuration: only letters, digits and "
            "'._~:/@+%=,[]-' are allowed in a bare argument (no spaces, quotes, ';', '{', '}', '$' or '#')"
        )
    return text


def nginx_map_key(value: object) -> str:
    """A quoted ``map`` source value that nginx compares exactly (never as a regex or keyword)."""
    text = str(value)
    if _CONTROL.search(text):
        raise UnsafeValue(f"{text!r} holds a control character; it cannot be written into the nginx configuration")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    # The parser turns "\\\\" into one backslash; map then drops that leading backslash and takes
    # the rest literally. Without it "~CN=" would be a regex that lets every subject in.
    return f'"\\\\{escaped}"'


def nginx_quoted(value: object) -> str:
    """A double-quoted argument of fixed text (an error body): no variables, no control characters."""
    text = str(value)
    if _CONTROL.search(text) or "$" in text:
        raise UnsafeValue(f"{text!r} holds a control character or '$'; it cannot be fixed text in nginx")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


FILTERS = MappingProxyType({"nginx_token": nginx_token, "nginx_map_key": nginx_map_key, "nginx_quoted": nginx_quoted})
