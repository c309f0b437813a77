"""Templates rendered on the controller, from files/templates/ like pyinfra's files.template."""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


@functools.lru_cache(maxsize=None)
def _environment(project_dir: str, filters: tuple[tuple[str, object], ...]) -> Environment:
    """One environment per project and filter set: Jinja compiles each template once per run (and
    again only if the file changes), not once per request note, which made notes O(endpoints)."""
    environment = Environment(
        loader=FileSystemLoader(Path(project_dir) / "files" / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(dict(filters))
    return environment


def render(project_dir: str, name: str, filters: dict | None = None, **values: object) -> str:
    """Render files/templates/<name>. An undefined variable is an error, never an empty string.
    ``filters`` are the escaping filters the template may use (e.g. nginx.escape.FILTERS)."""
    key = tuple(sorted((filters or {}).items()))
    return _environment(str(project_dir), key).get_template(name).render(**values)
