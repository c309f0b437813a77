"""Each endpoint of an inventory gets its FQDN, and each FQDN is served once.

The FQDN is the certificate's CN, so it is settled on the controller before any key or CSR is made:
given (``fqdn``) or derived from the environment's convention (``fqdn_conventions``, ``fqdn``
module) from the endpoint's ODS code and its supplier or provider, and in both cases checked
against that convention. An FQDN listed twice is refused, unless every host listing it says
``load_balanced: true``: then each host makes its own key, and its files are named
``<fqdn>@<host>`` (docs/ha.md).
"""

from __future__ import annotations

from collections.abc import Callable

from bars_receiver.inventory.fqdn import check_fqdn, convention_pattern, derive_fqdn
from bars_receiver.inventory.settings import Endpoint, HostEntry, ResolvedEndpoint, Settings

Fail = Callable[[str, str], None]  # (field, message): the loader's problem list


def resolve(settings: Settings, entries: dict[str, HostEntry], fail: Fail,
            retired: set[str]) -> dict[str, list[ResolvedEndpoint]]:
    """Each host's endpoints with their FQDNs; adds the stems of ``retired: true`` ones to ``retired``."""
    resolved: dict[str, list[ResolvedEndpoint]] = {}
    owner: dict[str, tuple[str, str, bool]] = {}  # FQDN -> (field, host, load_balanced) of its first listing
    for host_name, entry in entries.items():
        resolved[host_name] = []
        for index, endpoint in enumerate(entry.endpoints):
            field = f"hosts.{host_name}.endpoints[{index}]"
            result = resolve_endpoint(settings, endpoint, field, fail)
            if result is None:
                continue
            key = result.fqdn.lower()
            if key in owner:
                first_field, first_host, first_balanced = owner[key]
                if first_host == host_name:
                    fail(f"{field}.fqdn", f"{result.fqdn} is already listed for this host as {first_field}")
                    continue
                if not (endpoint.load_balanced and first_balanced):
                    fail(
                        f"{field}.fqdn",
                        f"{result.fqdn} is already served by {first_field}; a private key lives on one "
                        "host only, so each FQDN must appear once in an inventory, unless every host "
                        "listing it says load_balanced: true (each then makes its own key: docs/ha.md)",
                    )
                    continue
            else:
                owner[key] = (field, host_name, endpoint.load_balanced)
            if endpoint.load_balanced:
                result = result.model_copy(update={"pack_name": f"{result.fqdn}@{host_name}"})
            resolved[host_name].append(result)
            if endpoint.retired:
                retired.add(result.stem())
    return resolved


def resolve_endpoint(settings: Settings, endpoint: Endpoint, field: str, fail: Fail) -> ResolvedEndpoint | None:
    """The endpoint's FQDN, given or derived from its environment's convention, checked against it."""
    if settings.environment == "int" and endpoint.hosting != "supplier":
        fail(f"{field}.hosting", "INT endpoints are supplier-hosted; remove 'hosting' or set it to 'supplier'")
        return None
    organisation_field = endpoint.hosting  # "supplier" or "provider"
    other_field = "provider" if organisation_field == "supplier" else "supplier"
    organisation = getattr(endpoint, organisation_field)
    if getattr(endpoint, other_field) is not None:
        fail(
            f"{field}.{other_field}",
            f"does not apply to a {organisation_field}-hosted endpoint; give '{organisation_field}' instead"
            + (" or set hosting: provider" if other_field == "provider" else ""),
        )
        return None
    convention = settings.fqdn_conventions.get(endpoint.hosting)
    if convention is None:
        fail(f"{field}.hosting", f"no FQDN convention for {endpoint.hosting}-hosted endpoints in {settings.environment}")
        return None
    pattern = convention_pattern(convention)
    try:
        if endpoint.fqdn is None:
            if organisation is None:
                fail(f"{field}.{organisation_field}", f"is required to build the FQDN {convention!r}")
                return None
            fqdn = derive_fqdn(convention, ods=endpoint.ods, **{organisation_field: organisation})
        else:
            fqdn = check_fqdn(endpoint.fqdn)
    except ValueError as error:
        fail(f"{field}.{'fqdn' if endpoint.fqdn else organisation_field}", str(error))
        return None
    match = pattern.match(fqdn)
    if match is None:
        fail(f"{field}.fqdn", f"{fqdn!r} does not follow the {settings.environment.upper()} convention {convention!r}")
        return None
    if match["ods"].upper() != endpoint.ods:
        fail(f"{field}.fqdn", f"{fqdn!r} names ODS code {match['ods']!r} but the endpoint's ods is {endpoint.ods!r}")
        return None
    named = match[organisation_field]
    if organisation is not None and named.lower() != organisation.lower():
        fail(f"{field}.fqdn", f"{fqdn!r} names {organisation_field} {named!r} but the endpoint says {organisation!r}")
        return None
    return ResolvedEndpoint(
        fqdn=fqdn,
        ods=endpoint.ods,
        hosting=endpoint.hosting,
        organisation=organisation or named,
        upstream=endpoint.upstream,
        receiver_path=endpoint.receiver_path,
        app_unit=endpoint.app_unit,
        app_action=endpoint.app_action,
    )
