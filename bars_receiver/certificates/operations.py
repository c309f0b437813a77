"""Installing issued certificates on the host, and the renewal key swap.

The task (tasks/certificates.py) decides per endpoint, from the batched ``CertificateFiles`` fact,
what installing its certificate takes (``install_action``: a new generation from the live key, the
renewal swap to the staged next key, or only the files' modes); ``certificates_installed`` then
installs every certificate of a host that needs it in one command (files/scripts/
install_certificates.sh, switch.sh), the files travelling as one tar (``certificate_bundle``), and
is not declared at all when no endpoint needs it. Which key a certificate is for and whether a
renewal is due is ``renewal``; the PKCS#12 hand-off to the application is ``application/handoff.py``.
"""

from __future__ import annotations

import tarfile
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from bars_receiver.certificates.facts import CA, CERT, CHAIN, INSTALLED_FILES, InstalledCertificate
from bars_receiver.certificates.issued import IssuedCertificate
from bars_receiver.certificates.x509 import sha256_hex
from bars_receiver.keys.facts import FileMeta, LIVE, NEXT, PUBLIC_KEY_CACHE
from bars_receiver.shipping import host_script, shipped


def meta_is(meta: FileMeta | None, mode: str, gid: int) -> bool:
    """The file exists, owned by root and ``gid``, with ``mode`` (also used for the hand-off)."""
    return meta is not None and meta.mode == mode and meta.uid == 0 and meta.gid == gid


def install_action(certificate: IssuedCertificate, installed: InstalledCertificate, swap_keys: bool) -> str | None:
    """What installing ``certificate`` takes on the host, decided from the ``CertificateFiles`` fact:
    ``"live"`` (a new generation from the live key), ``"next"`` (the renewal swap: from the key next
    names), ``"modes"`` (installed, but the files are no longer root:root 0644) or None (nothing)."""
    wanted = {CERT: certificate.leaf_pem, CHAIN: certificate.chain_pem, CA: certificate.ca_pem}
    if swap_keys:
        return NEXT
    if any(installed.files.get(name) != sha256_hex(text) for name, text in wanted.items()):
        return LIVE
    if any(not meta_is(installed.modes.get(name), "644", 0) for name in wanted):
        return "modes"
    return None


def certificate_bundle(files: list[tuple[str, str, str, str]]) -> BytesIO:
    """One tar of every certificate to install, so one upload carries them all: for each endpoint
    directory ``<base_dir>/<name>`` (name, leaf, chain, CA bundle), its ``cert.pem``, ``chain.pem``
    and ``ca.pem`` as ``<name>/.staging/gen/<file>``, where install_certificates.sh extracts them
    from base_dir into the generation it staged. Same input, same bytes."""
    buffer = BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for directory, *texts in files:
            for name, text in zip(INSTALLED_FILES, texts):
                data = text.encode()
                info = tarfile.TarInfo(f"{directory}/.staging/gen/{name}")
                info.size, info.mode, info.uname, info.gname = len(data), 0o644, "root", "root"
                tar.addfile(info, BytesIO(data))
    buffer.seek(0)
    return buffer


@operation()
def certificates_installed(base_dir: str, installs: list[tuple[str, str, str, str, str]], loose: list[str] = ()):
    """
    Install issued certificates beside their keys, for every endpoint of a host in one command.

    + base_dir: the endpoints' parent directory; the uploaded certificates are staged in its .staging/
    + installs: (endpoint directory, role, cert.pem, chain.pem, ca.pem) of each endpoint whose
      certificate is new or changed; role ``live`` (its serving key) or ``next`` (a renewal: the
      new generation takes the key next names, and next is dropped once live names it)
    + loose: endpoint directories whose installed certificate files only need root:root 0644 again

    One upload (a tar, ``certificate_bundle``) carries every certificate; one command
    (files/scripts/install_certificates.sh) stages each endpoint, then runs switch.sh for each on
    every core: each makes a new generation archive/<N>/ holding the key (hard links), cert.pem,
    chain.pem and ca.pem (0644 root:root), checked against the key on the host, and renames live
    onto it, so nginx and the PKCS#12 never see a key beside another generation's certificate.
    Earlier generations stay in archive/. An endpoint whose switch fails is named and left as it
    was, the others are installed, and the operation fails: the next run installs the rest.

    **Example:**

    .. code:: python

        certificates_installed(name="Certificate for BaRS-INT-...", base_dir="/etc/bars-receiver",
                               installs=[("/etc/bars-receiver/BaRS-INT-...", "live", leaf, chain, ca)])
    """
    if not installs and not loose:
        host.noop("no certificate to install")
        return
    bundle = ""
    if installs:
        yield from host_script("prepare", base_dir)
        bundle = f"{base_dir}/.staging/certificates.tar"
        yield FileUploadCommand(
            certificate_bundle([(directory.rsplit("/", 1)[1], *texts) for directory, _, *texts in installs]), bundle)
    pairs = [(directory, role) for directory, role, *_ in installs] + [(directory, "modes") for directory in loose]
    switch = yield from shipped("switch")
    yield from host_script("install_certificates", switch, base_dir, bundle, PUBLIC_KEY_CACHE,
                           *(value for pair in pairs for value in pair))
