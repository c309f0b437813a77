"""Provision NHS BaRS receiver endpoints: keys, CSRs, certificates, TLS-MA and firewall.

Data flows one way: inventory YAML -> validated settings (``inventory.settings``) -> tasks -> host.

One folder per concern, named like the task that uses it (``tasks/keys.py`` -> ``keys/``):
``inventory/`` (settings, checked before any host is touched), ``keys/``, ``certificates/``,
``application/``, ``nginx/``, ``firewall/``, ``status/``; ``request_packs``, ``ownership`` and
``retire`` are one module each; the top-level modules beside them are shared by all. The map, and
where each setting is validated, used and rendered: docs/architecture.md.
"""
