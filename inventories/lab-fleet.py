"""pyinfra inventory: the lab fleet's hosts and endpoints in lab-fleet.yml beside this file, validated.

Run (on the fleet's switch): ip netns exec bars-fleet pyinfra -y inventories/lab-fleet.py deploy.py
or simply: bin/lab fleet deploy
"""

import sys
from pathlib import Path

# The project is the directory above this file, whatever the working directory.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bars_receiver.inventory.loader import load_hosts  # noqa: E402
from bars_receiver.run_mode import check_limit  # noqa: E402

receivers = check_limit(load_hosts(Path(__file__).with_suffix(".yml")))
