"""Retiring endpoints on the controller side: the fact's parser, unmanaged directories, the pack mark."""

from __future__ import annotations

from types import SimpleNamespace

from bars_receiver.request_packs import write_atomically
from bars_receiver.retire import RETIRED_MARK, EndpointDirectories, retired_pack_files, unmanaged

FQDN = "BaRS-INT-RX700.Acme.thirdparty.nhs.uk"
OTHER = "BaRS-INT-RX701.Acme.thirdparty.nhs.uk"


def endpoint(fqdn: str):
    return SimpleNamespace(fqdn=fqdn, receiver_url=lambda port: f"https://{fqdn}/")


def receiver(tmp_path, endpoints=(), retired=()):
    return SimpleNamespace(
        inventory="int", project_dir=str(tmp_path), requests_dir=str(tmp_path / "requests" / "int"),
        endpoints=[endpoint(f) for f in endpoints], retired=[endpoint(f) for f in retired],
        settings=SimpleNamespace(base_dir="/etc/bars-receiver", bars_team_email="bars@example.nhs.uk", listen_port=443),
    )


def test_fact_lists_endpoint_handoff_and_retired_directories():
    names = EndpointDirectories().process([
        f"@@endpoint {FQDN}", f"@@handoff {FQDN}", f"@@retired {OTHER}/20261130T201500Z", "noise", "@@endpoint",
    ])
    assert names.endpoints == [FQDN] and names.handoffs == [FQDN]
    assert names.archived(OTHER) == [f"{OTHER}/20261130T201500Z"] and names.archived(FQDN) == []


def test_directories_the_inventory_does_not_name_are_unmanaged(tmp_path):
    names = EndpointDirectories().process([f"@@endpoint {FQDN}", f"@@endpoint {OTHER}", "@@endpoint lost"])
    assert unmanaged(receiver(tmp_path, endpoints=[FQDN], retired=[OTHER.lower()]), names) == ["lost"]


def test_pack_is_marked_once_and_stays_stable(tmp_path):
    pack = tmp_path / "requests" / "int" / f"{FQDN}.md"
    pack.parent.mkdir(parents=True)
    pack.write_text("# BaRS certificate request\n\nbody\n")
    host = receiver(tmp_path, retired=[FQDN])
    files = retired_pack_files(host, host.retired[0], "rx-1")
    assert list(files) == [pack] and write_atomically(pack, files[pack])
    text = pack.read_text()
    assert text.startswith(RETIRED_MARK) and text.endswith("# BaRS certificate request\n\nbody\n")
    assert "Do not send this request" in text and "/etc/bars-receiver/.retired/" in text
    assert retired_pack_files(host, host.retired[0], "rx-1") == {pack: text}  # a re-run changes nothing
