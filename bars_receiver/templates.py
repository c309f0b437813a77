"""Templates rendered on the controller, from files/templates/ like pyinfra's files.template."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


def render(project_dir: str, name: str, filters: dict | None = None, **values: object) -> str:
    """Render files/templates/<name>. An undefined variable is an error, never an empty string.
    ``filters`` are the escaping filters the template may use (e.g. nginx_escape.FILTERS)."""
    environment = Environment(
        loader=FileSystemLoader(Path(project_dir) / "files" / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(filters or {})
    return environment.get_template(name).render(**values)
