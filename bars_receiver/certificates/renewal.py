"""Which key an issued certificate is for, and what the host's keys mean for the run.

From the batched ``EndpointFiles`` fact: whether a certificate is for the live or the staged next
key (``key_role``: installing the latter swaps keys), which key nginx serves with
(``serving_state``), whether a renewal is due (``renewal_due``: tasks/keys.py then stages a next
key and CSR), which endpoints are left as they are because the host no longer holds the key their
certificate was issued for (``key_refusals``, read by deploy.py before any task), and host
problems that stop the certificate task (``host_problems``).
"""

from __future__ import annotations

from bars_receiver.certificates.issued import IssuedCertificate
from bars_receiver.certificates.x509 import public_key_der, sha256_hex
from bars_receiver.inventory.settings import file_stem
from bars_receiver.keys.facts import EndpointState, NEXT


def key_role(certificate: IssuedCertificate, state: EndpointState | None) -> str | None:
    """Which host key ``certificate`` is for: ``"live"`` (key.pem), ``"next"`` (next/key.pem, staged
    for renewal: installing it swaps keys) or None (neither, or the key cannot be read).

    Decided from the host's own keys rather than from which CSR the controller matched, so a run
    interrupted half-way through a swap is finished by the next one.
    """
    if state is None:
        return None
    for role, part in (("live", state), ("next", state.next)):
        if part is not None and part.key_public_pem is not None and \
                sha256_hex(public_key_der(part.key_public_pem)) == certificate.public_key_sha256:
            return role
    return None


def serving_state(certificate: IssuedCertificate | None, state: EndpointState | None) -> EndpointState | None:
    """The key files that serve once this run is done: next/'s when the certificate swaps keys."""
    if certificate is not None and state is not None and key_role(certificate, state) == "next":
        return state.next
    return state


def renewal_due(certificate: IssuedCertificate | None, state: EndpointState | None, renewal_days: int) -> bool:
    """Stage a next key and CSR: the live key's certificate is inside its renewal window."""
    return (certificate is not None and certificate.state(renewal_days) == "renewing"
            and key_role(certificate, state) == "live")


def key_refusals(receiver, endpoint_files: dict) -> dict[str, str]:
    """FQDN -> why its checked certificate cannot go on this host, found from the facts before any
    operation runs. Such an endpoint is left exactly as it is; the rest of the host goes ahead.

    A certificate is worth days of someone's time: if the host no longer holds the key it was
    issued for (the live key, or the next key staged for renewal), say so rather than make a new
    key or install a certificate that cannot work.
    """
    refusals = {}
    for endpoint in receiver.endpoints:
        certificate = receiver.certificates.get(endpoint.fqdn)
        if certificate is None:
            continue
        key_path = f"{receiver.endpoint_dir(endpoint.fqdn)}/key.pem"
        csr = f"requests/{receiver.inventory}/{file_stem(endpoint)}{'.next' if certificate.for_next_key else ''}.csr"
        state = endpoint_files.get(endpoint.fqdn)
        if key_role(certificate, state) is not None:
            continue
        if state is None or state.key is None:
            refusals[endpoint.fqdn] = (
                f"{certificate.source}: was issued for the key behind {csr}, but the host has no {key_path}: the key "
                "it was issued for is gone. Restore key.pem (and key.pass) from backup; or, if it is lost, move the "
                ".cer out of files/certs (git keeps it) and re-run to make a new key and CSR to send"
            )
        elif state.key_unreadable or state.key_public_pem is None or (
                certificate.for_next_key and (state.next is None or state.next.key_unreadable)):
            path = f"{receiver.endpoint_dir(endpoint.fqdn)}/{NEXT}/key.pem" if certificate.for_next_key else key_path
            refusals[endpoint.fqdn] = (
                f"{certificate.source}: cannot be checked against {path}: the host has no such key, or openssl "
                "cannot read it with its key.pass. Restore it (and key.pass); the endpoint was left as it is"
            )
        else:
            refusals[endpoint.fqdn] = (
                f"{certificate.source}: is for the key behind {csr}, but {key_path} on the host is a different "
                f"key{' (and so is ' + NEXT + '/key.pem)' if state.next is not None else ''}, so the certificate "
                "cannot be installed. Was the host rebuilt or the key replaced? Restore the original key.pem, or "
                "move the .cer out of files/certs and request a certificate for the host's current CSR"
            )
    return refusals


def host_problems(receiver, installed) -> list[str]:
    """Reasons not to touch this host at all, found from the facts before any operation runs."""
    problems = []
    settings = receiver.settings
    if settings.app_group and receiver.certificates and installed.group_gid is None:
        problems.append(
            f"inventories/{receiver.inventory}.yml: app_group {settings.app_group!r} does not exist on the host; "
            "create the application's group first (usually with the application), or unset app_group"
        )
    return problems
