"""Batched operations' names: which endpoints each is for, readable at 1 and at 500."""

from bars_receiver.keys.operations import BATCH_NAMES_SHOWN, batch_name


def test_one_endpoint_is_named_alone():
    assert batch_name("Private key", ["a.nhs.uk"]) == "Private key for a.nhs.uk"


def test_a_few_endpoints_are_all_named():
    assert batch_name("CSR", ["a.nhs.uk", "b.nhs.uk", "c.nhs.uk"]) == "CSRs for 3 endpoints: a.nhs.uk, b.nhs.uk, c.nhs.uk"


def test_many_endpoints_name_the_first_few_and_count_the_rest():
    fqdns = [f"s{index:04d}.nhs.uk" for index in range(500)]
    name = batch_name("Private key", fqdns)
    assert name.startswith("Private keys for 500 endpoints: s0000.nhs.uk, s0001.nhs.uk")
    assert name.endswith(f"s{BATCH_NAMES_SHOWN - 1:04d}.nhs.uk and {500 - BATCH_NAMES_SHOWN} more")
    assert f"s{BATCH_NAMES_SHOWN:04d}" not in name and len(name) < 200
    assert not batch_name("CSR", fqdns[:BATCH_NAMES_SHOWN]).endswith("more")


def test_a_plural_that_is_not_an_added_s_is_given():
    fqdns = ["a.nhs.uk", "b.nhs.uk"]
    assert batch_name("Private key and CSR", fqdns[:1], plural="Private keys and CSRs") == "Private key and CSR for a.nhs.uk"
    assert batch_name("Private key and CSR", fqdns, plural="Private keys and CSRs").startswith(
        "Private keys and CSRs for 2 endpoints: a.nhs.uk")
