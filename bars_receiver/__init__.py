"""Provision NHS BaRS receiver endpoints: keys, CSRs, certificates, TLS-MA and firewall.

Data flows one way: inventory YAML -> validated settings (``settings``) -> tasks -> host.
"""
