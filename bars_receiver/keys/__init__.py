"""Keys and CSRs on the host (``tasks/keys.py``): the batched ``EndpointFiles`` fact that reads every
endpoint directory in one round trip (``facts``) and the operations that make a private key once,
never replace it, and write its CSR (``operations``).
"""
