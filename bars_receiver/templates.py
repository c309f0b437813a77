"""Templates rendered on the controller, from files/templates/ like pyinfra's files.template."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


def render(project_dir: str, name: str, **values: object) -> str:
    """Render files/templates/<name>. An undefined variable is an error, never an empty string."""
    environment = Environment(
        loader=FileSystemLoader(Path(project_dir) / "files" / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(name).render(**values)
