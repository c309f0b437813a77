"""pyinfra inventory: the hosts and endpoints in lab.yml beside this file, validated.

Run: pyinfra -y inventories/lab.py deploy.py
"""

from pathlib import Path

from bars_receiver.inventory import load_hosts

receivers = load_hosts(Path(__file__).with_suffix(".yml"))
