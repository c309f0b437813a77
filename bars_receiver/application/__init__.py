"""The application behind an endpoint (``tasks/certificates.py`` hands over, ``tasks/application.py``
tells it): its PKCS#12, the PFX password and kestrel.env under ``app_dir`` (``handoff``), and its
systemd unit (``app_unit``) restarted or reloaded after its PFX or key changed, then checked active
(``unit``).
"""
