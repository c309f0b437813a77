"""pyinfra inventory: the hosts and endpoints in int.yml beside this file, validated.

Run: pyinfra -y inventories/int.py deploy.py
"""

from pathlib import Path

from bars_receiver.inventory import load_hosts

receivers = load_hosts(Path(__file__).with_suffix(".yml"))
