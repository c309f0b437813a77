"""A fleet, not a host: one pyinfra run against four real lab hosts on one lab network.

One fleet (lab/fleet.py) is booted for the module and shared by its tests, in order: the whole
fleet deploys in one run (keys, then certificates from the lab CA, then TLS-MA on every host);
with one host powered off, the other three complete and the down one shows ``unreachable``;
with one endpoint's certificate expired, every other endpoint on every host is updated.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from lab.ca import LabCA
from lab.fleet import PROXY, STRANGER, host_address
from lab.project import endpoint, fqdn

HOSTS = (1, 2, 3, 4)
EXPIRED = fqdn("FLT2A")


def endpoints(index: int, extra: bool = False) -> list[dict]:
    names = [f"FLT{index}A", f"FLT{index}B"] + ([f"FLT{index}C"] if extra else [])
    return [endpoint(name) for name in names]


def status_rows(run) -> dict[tuple[str, str], tuple[str, str]]:
    """(host, fqdn) -> (state, note) from the status table at the end of a run."""
    table = run.stderr[run.stderr.rindex("--> BaRS receiver endpoints:"):]
    rows = {}
    for line in table.splitlines()[2:]:
        words = line.split(None, 5)
        if len(words) >= 5 and words[1].startswith("BaRS-"):
            rows[(words[0], words[1])] = (words[2], words[5] if len(words) > 5 else "")
    return rows


def sign_all(project, ca: LabCA, skip: tuple[str, ...] = (), **validity) -> None:
    """The lab CA, playing NHS England, signs every live CSR of the test inventory."""
    for csr in sorted((project.root / "requests" / "test").glob("*.csr")):
        if csr.name.endswith(".next.csr") or csr.stem in skip:
            continue
        ca.sign_csr_file(csr, project.root, "test", **validity)


def serial(pem: str | bytes | None) -> int | None:
    if pem is None:
        return None
    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificates(data)[0].serial_number


@pytest.fixture(scope="module")
def deployed(fleet, fleet_project, ca):
    """Four hosts, two endpoints each: a first run (keys, CSRs), the lab CA signs, a second run."""
    fleet_project.write_fleet_inventory({index: endpoints(index) for index in HOSTS})
    first = fleet_project.deploy()
    sign_all(fleet_project, ca)
    second = fleet_project.deploy()
    return first, second


def test_a_four_host_inventory_deploys_in_one_run(deployed, fleet, fleet_project, client):
    first, second = deployed
    for run, state in ((first, "requested"), (second, "active")):
        rows = status_rows(run)
        assert set(rows) == {(fleet.host_name(i), fqdn(f"FLT{i}{x}")) for i in HOSTS for x in "AB"}
        assert {row[0] for row in rows.values()} == {state}, rows
    # Every host was reached by the one pyinfra process: each made its own keys, the packs are here.
    for index in HOSTS:
        for name in (fqdn(f"FLT{index}A"), fqdn(f"FLT{index}B")):
            assert (fleet_project.root / "requests" / "test" / f"{name}.csr").exists()
            assert fleet.ssh(index, f"test -s /etc/bars-receiver/{name}/key.pem").returncode == 0
    # And every host answers TLS-MA for its own endpoints, from the BaRS proxy's address.
    ca_file = fleet_project.root / "files" / "ca" / "test" / "lab-root.pem"
    for index in HOSTS:
        for name in (fqdn(f"FLT{index}A"), fqdn(f"FLT{index}B")):
            result = fleet.tls_ma_call(host_address(index), name, client, ca_file)
            assert result.returncode == 0 and result.stdout.endswith("\n200"), result.stdout + result.stderr


def test_an_unchanged_fleet_run_changes_nothing(deployed, fleet_project):
    run = fleet_project.deploy()
    assert run.changed == 0, run.output[-3000:]


def test_the_application_port_answers_the_host_itself_never_a_stranger(deployed, fleet):
    """The endpoints' upstream is http://127.0.0.1:8080. An application bound wider than loopback
    (here a second listener on the host's own fleet address, port 8080) is reached only by the host
    itself: a stranger's packet to it is dropped. A port no upstream names (8090) still answers
    the stranger, so the drop is the firewall's rule, not an unreachable host."""
    address = host_address(1)
    started = fleet.ssh(1, (
        f"for port in 8080 8090; do setsid python3 -m http.server $port --bind {address} "
        ">/dev/null 2>&1 < /dev/null & echo $!; done"
    )).stdout.split()
    try:
        probe = (f"import urllib.request, sys; sys.stdout.write(str(urllib.request.urlopen("
                 f"'http://{address}:%d/', timeout=5).status))")
        for port in (8080, 8090):
            for _ in range(50):  # the listeners take a moment to bind
                if fleet.ssh(1, f"python3 -c \"{probe % port}\"", check=False).stdout == "200":
                    break
            else:
                pytest.fail(f"the host itself cannot reach its own listener on port {port}")

        def stranger(port: int) -> str:
            result = fleet.netns_run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                 "--interface", STRANGER, f"http://{address}:{port}/"],
                capture_output=True, text=True, timeout=30,
            )
            return result.stdout

        assert stranger(8090) == "200"  # the host is reachable; only the application's port is kept
        assert stranger(8080) == "000"  # dropped: no answer at all
    finally:
        fleet.ssh(1, "kill " + " ".join(started), check=False)


def test_with_one_host_down_the_others_complete_and_it_shows_unreachable(deployed, fleet, fleet_project):
    fleet_project.write_fleet_inventory({index: endpoints(index, extra=True) for index in HOSTS})
    down = fleet.host_name(4)
    fleet.stop_host(4)
    try:
        run = fleet_project.deploy(check=False)
    finally:
        fleet.start_host(4)
    assert run.returncode != 0
    rows = status_rows(run)
    for index in (1, 2, 3):
        name = fqdn(f"FLT{index}C")
        assert rows[(fleet.host_name(index), name)][0] == "requested", rows
        assert rows[(fleet.host_name(index), fqdn(f"FLT{index}A"))][0] == "active"
        assert (fleet_project.root / "requests" / "test" / f"{name}.csr").exists()
        assert fleet.ssh(index, f"test -s /etc/bars-receiver/{name}/key.pem").returncode == 0
    for name in (fqdn("FLT4A"), fqdn("FLT4B"), fqdn("FLT4C")):
        state, note = rows[(down, name)]
        assert state == "unreachable" and "could not connect" in note
    assert not (fleet_project.root / "requests" / "test" / f"{fqdn('FLT4C')}.csr").exists()
    # Back up, the next run catches the fourth host up and succeeds.
    again = fleet_project.deploy()
    assert status_rows(again)[(down, fqdn("FLT4C"))][0] == "requested"
    assert fleet.ssh(4, f"test -s /etc/bars-receiver/{fqdn('FLT4C')}/key.pem").returncode == 0


def test_an_expired_certificate_stops_its_endpoint_only(deployed, fleet, fleet_project, ca):
    """Every endpoint gets a re-issued certificate, but FLT2A's is expired: all others are
    installed and served, on every host including FLT2A's own; FLT2A keeps what it served."""
    before = fleet.served_certificate(host_address(2), EXPIRED)
    assert before is not None
    sign_all(fleet_project, ca, skip=(EXPIRED,))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    ca.sign_csr_file(fleet_project.root / "requests" / "test" / f"{EXPIRED}.csr", fleet_project.root, "test",
                     not_before=start, not_after=start + dt.timedelta(days=365))
    expected = {name: serial((fleet_project.root / "files" / "certs" / "test" / f"{name}.cer").read_bytes())
                for name in [fqdn(f"FLT{i}{x}") for i in HOSTS for x in "ABC"]}

    run = fleet_project.deploy(check=False)
    assert run.returncode != 0
    assert f"files/certs/test/{EXPIRED}.cer: expired on" in run.output
    rows = status_rows(run)
    for index in HOSTS:
        for name in (fqdn(f"FLT{index}{x}") for x in "ABC"):
            if name == EXPIRED:
                continue
            assert rows[(fleet.host_name(index), name)][0] == "active", rows
            assert serial(fleet.served_certificate(host_address(index), name)) == expected[name], name
    state, note = rows[(fleet.host_name(2), EXPIRED)]
    assert state == "refused" and "expired on" in note
    assert fleet.served_certificate(host_address(2), EXPIRED) == before  # left as it was

    # Nothing else to do: a re-run changes nothing, and still says so.
    again = fleet_project.deploy(check=False)
    assert again.returncode != 0 and again.changed == 0, again.output[-3000:]
    assert status_rows(again)[(fleet.host_name(2), EXPIRED)][0] == "refused"


def test_a_run_limited_to_a_healthy_host_succeeds_despite_the_expired_certificate(deployed, fleet, fleet_project):
    run = fleet_project.deploy("--limit", fleet.host_name(1))
    assert run.returncode == 0 and run.changed == 0
    assert {host for host, _ in status_rows(run)} == {fleet.host_name(1)}


def test_traffic_stays_in_the_lab_network(fleet):
    """Every address the fleet uses is on its own bridge, in a namespace the lab made."""
    listing = fleet.netns_run(["ip", "-o", "-4", "addr", "show", "dev", "br0"], capture_output=True, text=True)
    assert PROXY in listing.stdout and "192.0.2.1/24" in listing.stdout
    route = fleet.netns_run(["ip", "route", "get", "35.197.254.55"], capture_output=True, text=True)
    assert route.returncode != 0  # no route out of the lab: the real BaRS proxy cannot be reached


# ---------------------------------------------------------------- retiring, and endpoints nobody manages

RETIRED = fqdn("FLT1B")
DROPPED = fqdn("FLT3B")


def fleet_with(retired: tuple[str, ...] = (), dropped: tuple[str, ...] = ()) -> dict[int, list[dict]]:
    hosts = {}
    for index in HOSTS:
        hosts[index] = [
            {**item, "retired": True} if fqdn(item["ods"]) in retired else item
            for item in endpoints(index, extra=True) if fqdn(item["ods"]) not in dropped
        ]
    return hosts


@pytest.fixture(scope="module")
def retired_run(deployed, fleet, fleet_project, ca):
    # A valid certificate for the endpoint the test above expired, so these runs can succeed.
    ca.sign_csr_file(fleet_project.root / "requests" / "test" / f"{EXPIRED}.csr", fleet_project.root, "test")
    before = serial(fleet.served_certificate(host_address(1), RETIRED))
    fleet_project.write_fleet_inventory(fleet_with(retired=(RETIRED,), dropped=(DROPPED,)))
    return before, fleet_project.deploy()


def test_a_retired_endpoint_is_no_longer_served_and_archived_with_a_record(retired_run, fleet, fleet_project):
    before, run = retired_run
    assert before is not None
    rows = status_rows(run)
    assert rows[(fleet.host_name(1), RETIRED)][0] == "retired"
    assert fleet.served_certificate(host_address(1), RETIRED) is None  # the handshake is refused
    assert fleet.served_certificate(host_address(1), fqdn("FLT1A")) is not None  # its neighbour still serves
    assert fleet.ssh(1, f"test -e /etc/bars-receiver/{RETIRED} || test -e /etc/bars-receiver-app/{RETIRED}",
                     check=False).returncode == 1
    (archive,) = fleet.ssh(1, f"ls -d /etc/bars-receiver/.retired/{RETIRED}/*/").stdout.split()
    record = fleet.ssh(1, f"cat {archive}RETIRED").stdout
    fields = dict(line.split(" ", 1) for line in record.splitlines())
    assert fields["fqdn"] == RETIRED and fields["inventory"] == "test"
    assert int(fields["certificate_serial"], 16) == before
    assert fields["retired_at"] == archive.rstrip("/").rsplit("/", 1)[1]
    # Nothing deleted: the key and the PFX are in the archive, root-only.
    assert fleet.ssh(1, f"test -s {archive}key/key.pem && test -s {archive}handoff/receiver.pfx").returncode == 0
    assert fleet.ssh(1, f"stat -c %a /etc/bars-receiver/.retired {archive}").stdout.split() == ["700", "700"]
    pack = (fleet_project.root / "requests" / "test" / f"{RETIRED}.md").read_text()
    assert pack.startswith("> **RETIRED.**") and "Do not send this request" in pack


def test_an_endpoint_dropped_from_the_inventory_is_reported_until_retired(retired_run, fleet, fleet_project):
    _, run = retired_run
    state, note = status_rows(run)[(fleet.host_name(3), DROPPED)]
    assert state == "unmanaged" and "retired: true" in note
    assert fleet.ssh(3, f"test -s /etc/bars-receiver/{DROPPED}/key.pem").returncode == 0  # nothing deleted
    again = fleet_project.deploy()
    assert again.changed == 0, again.output[-3000:]  # a re-run changes nothing ...
    assert status_rows(again)[(fleet.host_name(3), DROPPED)][0] == "unmanaged"  # ... and still reports it
    assert status_rows(again)[(fleet.host_name(1), RETIRED)][0] == "retired"
    assert (fleet_project.root / "requests" / "test" / f"{RETIRED}.md").read_text().count("RETIRED.") == 1

    fleet_project.write_fleet_inventory(fleet_with(retired=(RETIRED, DROPPED)))
    retired = fleet_project.deploy()
    assert status_rows(retired)[(fleet.host_name(3), DROPPED)][0] == "retired"
    assert fleet.ssh(3, f"test -s /etc/bars-receiver/.retired/{DROPPED}/*/key/key.pem").returncode == 0
    assert fleet_project.deploy().changed == 0
