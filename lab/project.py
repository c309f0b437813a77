"""A throwaway copy of the project aimed at one lab host or a lab fleet, for tests and benchmarks.

Each copy has its own inventories/, requests/ and files/certs/, so runs cannot see each other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from .fleet import PROXY as FLEET_PROXY, Fleet
from .host import Lab

REPO = Path(__file__).resolve().parent.parent
PYINFRA = Path(sys.executable).parent / "pyinfra"
COPIED = ("bars_receiver", "tasks", "group_data", "files", "inventories", "lab", "deploy.py")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def totals(self) -> dict:
        """pyinfra --json totals: "success" counts operations that changed something."""
        return json.loads(self.stdout[self.stdout.index("{"):])["results"]["totals"]

    @property
    def changed(self) -> int:
        return self.totals["success"]


class Project:
    """A copy of the project with its own inventories, for one lab host or a lab fleet.

    With a fleet, pyinfra runs on the fleet's switch and reaches every host at its fleet address.
    """

    def __init__(self, root: Path, lab: Lab | Fleet):
        self.root = root
        self.lab = lab
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, root / name)

    def write_inventory(self, endpoints: list[dict], settings: dict | None = None, name: str = "test") -> Path:
        document = {
            "environment": "int",
            "settings": {"proxy_addresses": ["127.0.0.2"], **(settings or {})},
            "hosts": {self.lab.name: {**self.lab.host_data(), "endpoints": endpoints}},
        }
        return self._write_document(document, name)

    def write_fleet_inventory(self, endpoints: dict[int, list[dict]], settings: dict | None = None,
                              name: str = "test") -> Path:
        """An inventory naming fleet hosts by index (1-based) with their endpoints; the BaRS
        proxy is the fleet's stand-in address."""
        document = {
            "environment": "int",
            "settings": {"proxy_addresses": [FLEET_PROXY], **(settings or {})},
            "hosts": {self.lab.host_name(index): {**self.lab.host_data(index), "endpoints": host_endpoints}
                      for index, host_endpoints in endpoints.items()},
        }
        return self._write_document(document, name)

    def _write_document(self, document: dict, name: str) -> Path:
        path = self.root / "inventories" / f"{name}.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        (self.root / "inventories" / f"{name}.py").write_text(
            (self.root / "inventories" / "lab.py").read_text().replace("lab.yml", f"{name}.yml")
        )
        return path

    def deploy(self, *args: str, inventory: str = "test", env: dict | None = None, check: bool = True) -> Run:
        """Run ``pyinfra -y --json ARGS inventories/<inventory>.py deploy.py`` inside the lab's netns
        (a fleet's switch)."""
        argv = [*self.lab.netns_prefix(), str(PYINFRA), "-y", "--json", *args,
                f"inventories/{inventory}.py", "deploy.py"]
        result = subprocess.run(
            argv, cwd=self.root, capture_output=True, text=True, timeout=600,
            env={**os.environ, **(env or {})},
        )
        run = Run(result.returncode, result.stdout, result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(f"pyinfra failed ({result.returncode}):\n{run.output[-4000:]}")
        return run


def endpoint(ods: str, supplier: str = "ExampleSupplier", **extra) -> dict:
    return {"ods": ods, "supplier": supplier, "upstream": "http://127.0.0.1:8080", **extra}


def fqdn(ods: str, supplier: str = "ExampleSupplier") -> str:
    return f"BaRS-INT-{ods}.{supplier}.thirdparty.nhs.uk"
