"""pyinfra inventory: the hosts and endpoints in prod.yml beside this file, validated.

Run: pyinfra -y inventories/prod.py deploy.py
"""

import sys
from pathlib import Path

# The project is the directory above this file, whatever the working directory.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bars_receiver.inventory.loader import load_hosts  # noqa: E402
from bars_receiver.run_mode import check_limit  # noqa: E402

receivers = check_limit(load_hosts(Path(__file__).with_suffix(".yml")))
