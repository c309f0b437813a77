"""What state every endpoint is in: the status table, ``status/<inventory>.json`` and the attention
exit status at the end of a run (``report``), and the same questions answered from the repository
alone, without a host (``audit``, ``bin/audit``).
"""
