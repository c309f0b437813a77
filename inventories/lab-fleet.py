"""pyinfra inventory: the lab fleet's hosts and endpoints in lab-fleet.yml beside this file, validated.

Run (on the fleet's switch): ip netns exec bars-fleet pyinfra -y inventories/lab-fleet.py deploy.py
or simply: bin/lab fleet deploy
"""

from pathlib import Path

from bars_receiver.inventory import load_hosts

receivers = load_hosts(Path(__file__).with_suffix(".yml"))
