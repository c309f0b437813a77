"""Inventory and settings: an inventory's YAML and the group data become validated ``HostSettings``
on the controller, before any host is contacted (``inventories/<name>.py`` calls
``loader.load_hosts``). The YAML is read as YAML 1.2 (``yaml12``), layered over ``group_data/``
and checked by the settings model (``settings``), whose fields use one strict grammar per value
(``grammar``, ``fqdn``, ``dn``, ``addresses``); each endpoint gets its FQDN (``endpoints``); every
problem is collected with its file and field (``errors``, worded by ``messages``) and stops the run
with a message, never a traceback.
"""
