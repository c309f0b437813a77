"""Host-side output cache for the per-endpoint facts (files/scripts/cached_fact.sh).

``EndpointFiles`` and ``CertificateFiles`` describe every endpoint directory; their scripts start
a dozen processes per endpoint, seconds at 500 endpoints on every run. Wrapped here, an unchanged
host answers from the output kept at the last full read, after one ``find`` over the directories
proves nothing in them changed (paths, modes, owners, inodes, sizes, mtimes and ctimes); any
change, and any change to the script or its arguments, runs the script again.
"""

from __future__ import annotations

import base64

from pyinfra.api import StringCommand

from bars_receiver.scripts import run_script, script_text

# Root-only, outside /etc: a cache, not state. Removing it only makes the next run read in full.
FACT_CACHE = "/var/cache/bars-receiver/facts"


def cached_fact(name: str, roots: tuple[str, ...], *args: object, cache_write: bool = True) -> StringCommand:
    """``files/scripts/<name>.sh ARGS`` whose output is kept against the state under ``roots``
    (one or two directories); with ``cache_write`` False (a --dry run) the cache is only read."""
    first, second = (*roots, "")[:2]
    return run_script("cached_fact", f"{FACT_CACHE}/{name}", "yes" if cache_write else "no", first, second,
                      script_text(name), *args)


FRAME = "@@b64 "


def unframed(output: list[str]) -> list[str]:
    """The script's own lines from cached_fact.sh's one-line frame (``@@b64 `` and base64: one line
    reads far faster over SSH than thousands); other output as it is."""
    if len(output) == 1 and output[0].startswith(FRAME):
        return base64.b64decode(output[0][len(FRAME):]).decode().splitlines()
    return output
