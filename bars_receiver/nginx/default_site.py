"""Debian's default nginx site on a receiver host.

Debian enables a site that answers on port 80 with a welcome page. A receiver host needs nothing
but the TLS-MA listener, so with ``disable_default_site`` (the default) the enabled link is moved
to ``<base_dir>/nginx-default-site.disabled`` when it is still the package's untouched file (the
package's own file stays in sites-available/); nothing is deleted. A site
someone has modified is theirs: it is left in place and reported on every run.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FactBase, StringCommand, operation

from bars_receiver.scripts import run_script
from bars_receiver.shipping import host_script


class DefaultSite(FactBase):
    """
    The state of Debian's default nginx site: ``absent``, ``untouched`` (the package's file,
    enabled) or ``modified``.

    .. code:: python

        "untouched"
    """

    def command(self) -> StringCommand:
        return run_script("nginx_default_site", "state")

    def process(self, output: list[str]) -> str:
        return output[-1].strip() if output else "absent"


def default_site_settled(state: str) -> bool:
    """``default_site_disabled`` would do nothing and say nothing, given the DefaultSite fact: the
    site is not enabled. (A modified site is left enabled with a warning every run.)"""
    return state == "absent"


@operation()
def default_site_disabled(archive_path: str):
    """
    Disable Debian's untouched default site by moving its enabled link to ``archive_path``.

    + archive_path: where the link is kept (never deleted); moving it back re-enables the site

    **Example:**

    .. code:: python

        default_site_disabled(name="Debian's default site disabled", archive_path="/etc/bars-receiver/nginx-default-site.disabled")
    """
    state = host.get_fact(DefaultSite)
    if state == "absent":
        host.noop("Debian's default site is not enabled")
    elif state == "modified":
        message = ("Debian's default site was modified on this host, so it is left enabled; disable it by hand "
                   "(/etc/nginx/sites-enabled/default) if the host should serve only the TLS-MA listener")
        logger.warning(f"{host.name}: {message}")
        host.noop(message)
    else:
        yield from host_script("nginx_default_site", "archive", archive_path)
