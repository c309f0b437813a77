"""The listener's firewall (``tasks/firewall.py``, ``tasks/firewall_release.py``): the nftables table
of our own, its fact and its atomic apply (``nftables``), and the structural check of the rendered
rules before they go live (``rules_check``).
"""
