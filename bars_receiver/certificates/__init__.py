"""Issued certificates: checked on the controller while the inventory loads (``issued``: one file
and an inventory's files; ``pem``: reading certificate files; ``ca_bundle``: ``files/ca/`` and
``ca_pins``; ``trust`` and ``chain``: the path to a root, verified by cryptography's
``x509.verification``; ``x509``: key and CSR helpers; ``crl``: the optional client CRL), then
installed on the host by ``tasks/certificates.py``: the ``CertificateFiles`` fact (``facts``) and
the install and renewal swap operation (``operations``), with which key a certificate is for and
whether renewal is due (``renewal``); the PKCS#12 hand-off is ``application/handoff.py``.
"""
