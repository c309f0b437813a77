"""Errors shown to the operator. Each names the file and field, what is wrong and what is right."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api.exceptions import PyinfraError


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


# A junk file can yield thousands of problems; the first ones are what the operator fixes first.
MAX_SHOWN = 50


class InventoryError(PyinfraError):
    """Raised while pyinfra loads the inventory, so no host has been contacted yet."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        lines = [f"invalid inventory ({count}); nothing was done on any host:"]
        lines += [f"  - {problem}" for problem in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:
            lines.append(f"  ... and {len(problems) - MAX_SHOWN} more problems, not shown; fix the ones above first")
        super().__init__("\n".join(lines))
