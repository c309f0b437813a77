"""Last of all: fail this host's run if any of its endpoints was left as it is (deploy.py's
``refused``), so that CI shows it, once everything else on the host (and on every other host) is
done. The reasons were printed as the inventory loaded and are in the status table."""

from pyinfra import host
from pyinfra.operations import python

from bars_receiver.status.report import refusal_failure

refused = host.data.get("refused") or {}

if refused:
    python.call(
        name=f"Endpoints left as they are: {len(refused)} certificate(s) refused",
        function=refusal_failure,
        refused=dict(refused),
    )
