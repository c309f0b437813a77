"""The status as JSON and the opt-in exit status: the same rows as the table, with a reason when
a person is needed."""

from __future__ import annotations

from datetime import datetime, timezone

from bars_receiver.status.report import Row, attention, format_table, status_document

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)
ROWS = [
    Row("rx-2", "BaRS-INT-B.Acme.thirdparty.nhs.uk", "error", "2027-11-24", "359", "the run failed on this host"),
    Row("rx-1", "BaRS-INT-A.Acme.thirdparty.nhs.uk", "renewing", "2026-12-10", "10", "next key staged: send x"),
    Row("rx-1", "BaRS-INT-C.Acme.thirdparty.nhs.uk", "requested", "-", "-", "awaiting certificate: send y"),
    Row("rx-3", "BaRS-INT-D.Acme.thirdparty.nhs.uk", "unreachable", "-", "-", "could not connect"),
    Row("rx-4", "BaRS-INT-E.Acme.thirdparty.nhs.uk", "active", "2027-11-24", "359", ""),
]


def test_json_has_the_table_rows_in_the_same_order():
    document = status_document(ROWS, "int", "int", dry_run=False, now=NOW)
    table = format_table(ROWS).splitlines()[2:]
    assert [(e["host"], e["fqdn"], e["state"]) for e in document["endpoints"]] == \
        [tuple(line.split()[:3]) for line in table]
    assert document["schema"] == "bars-receiver-status/1"
    assert document["generated_at"] == "2026-11-30T00:00:00Z"
    error = next(e for e in document["endpoints"] if e["host"] == "rx-2")
    assert error == {"host": "rx-2", "fqdn": "BaRS-INT-B.Acme.thirdparty.nhs.uk", "state": "error",
                     "expires": "2027-11-24", "days_left": 359, "note": "the run failed on this host",
                     "attention": "the run failed on this host"}
    requested = next(e for e in document["endpoints"] if e["state"] == "requested")
    assert requested["expires"] is None and requested["days_left"] is None and requested["attention"] is None


def test_attention_reasons():
    error, renewing, requested, unreachable, active = ROWS
    assert "renewing" in attention(renewing)
    assert attention(requested) is None
    assert attention(unreachable) == "could not connect"
    assert attention(active) is None
    assert "expires in 359 days" in attention(active, within_days=400)
    assert attention(Row("h", "f", "active", "2026-01-01", "-3", "")) == "the certificate expired 3 days ago"
    assert attention(Row("h", "f", "refused", "-", "-", "left as it is: x")) == "left as it is: x"


def test_needs_attention_only_when_some_row_does():
    calm = status_document([ROWS[2], ROWS[4]], "int", "int", dry_run=True, now=NOW)
    assert calm["needs_attention"] is False and calm["dry_run"] is True
    assert status_document(ROWS, "int", "int", dry_run=False, now=NOW)["needs_attention"] is True
