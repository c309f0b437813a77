"""Parsing the batched fact's output: one command describes every endpoint directory."""

from bars_receiver.facts import EndpointFiles

PUBLIC = ["-----BEGIN PUBLIC KEY-----", "MIIBIjAN", "-----END PUBLIC KEY-----"]
CSR = ["-----BEGIN CERTIFICATE REQUEST-----", "MIICnjCC", "-----END CERTIFICATE REQUEST-----"]


def test_parses_each_endpoint():
    output = [
        "@@endpoint BaRS-INT-A01.Acme.thirdparty.nhs.uk",
        "@@dir 700 0 0",
        "@@key 600 0 0",
        "@@key_public", *PUBLIC,
        "@@csr", *CSR,
        "@@endpoint BaRS-INT-A02.Acme.thirdparty.nhs.uk",
        "@@dir 755 0 0",
    ]
    states = EndpointFiles().process(output)
    first = states["BaRS-INT-A01.Acme.thirdparty.nhs.uk"]
    assert first.dir.root_only and first.key.mode == "600"
    assert first.key_public_pem == "\n".join(PUBLIC) + "\n"
    assert first.csr_pem == "\n".join(CSR) + "\n"
    second = states["BaRS-INT-A02.Acme.thirdparty.nhs.uk"]
    assert second.key is None and second.csr_pem is None
    assert not second.dir.root_only


def test_unreadable_key_has_no_public_key():
    output = ["@@endpoint X.nhs.uk", "@@dir 700 0 0", "@@key 600 0 0", "@@key_public", "@@key_unreadable"]
    state = EndpointFiles().process(output)["X.nhs.uk"]
    assert state.key_unreadable and state.key_public_pem is None


def test_group_or_world_bits_are_not_root_only():
    output = ["@@endpoint X.nhs.uk", "@@dir 700 0 0", "@@key 640 0 0"]
    assert not EndpointFiles().process(output)["X.nhs.uk"].key.root_only


def test_empty_output_means_no_endpoints():
    assert EndpointFiles().process([]) == {}
