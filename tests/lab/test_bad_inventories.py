"""Bad inventories through the real CLI (`pyinfra -y inventories/<name>.py deploy.py`), against a lab
host that already had a good deploy.

One lab host, many bad inventories: each is refused while pyinfra loads the inventory, so each
run is quick. For every one: a non-zero exit status, the file and field named with what is
wrong, "nothing was done on any host", no Python traceback. After all of them: the host's
firewall, nginx configuration, deploy directories and units, and the project's `requests/`, are
byte for byte what the good deploy left.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from lab.project import endpoint

GOOD_SETTINGS = {"proxy_addresses": ["127.0.0.2"]}
# What a deploy writes on the host: all of it is fingerprinted before and after the bad runs.
WATCHED = "/etc/bars-receiver /etc/bars-receiver-app /etc/nginx /etc/nftables.d /etc/systemd/system"
SNAPSHOT = (
    f"find {WATCHED} -xdev \\( -type f -o -type l -o -type d \\) -printf '%p %m %u:%g %s %l\\n' 2>/dev/null | sort;"
    f" find {WATCHED} -xdev -type f -exec sha256sum {{}} + 2>/dev/null | sort; nft list ruleset;"
    " ls -A /tmp | sort"
)


@pytest.fixture(scope="module")
def good(lab, project):
    """A good deploy (one endpoint awaiting its certificate), then the state it left."""
    project.write_inventory([endpoint("BAD01")], settings=GOOD_SETTINGS, name="good")
    project.deploy(inventory="good")
    return lab.ssh(SNAPSHOT).stdout, _tree(project.root / "requests")


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _document(lab, settings: dict | None = None, **endpoint_fields) -> dict:
    return {
        "environment": "int",
        "settings": {**GOOD_SETTINGS, **(settings or {})},
        "hosts": {lab.name: {**lab.host_data(), "endpoints": [{**endpoint("BAD01"), **endpoint_fields}]}},
    }


def _text(lab, settings: dict | None = None, **endpoint_fields) -> str:
    return yaml.safe_dump(_document(lab, settings, **endpoint_fields), sort_keys=False)


def _settings_line(lab, line: str) -> str:
    """Good YAML with one raw line added under settings: (YAML 1.1 spellings need raw text)."""
    return _text(lab).replace("settings:\n", f"settings:\n  {line}\n", 1)


def _second_host_same_machine(lab) -> str:
    document = _document(lab)
    document["hosts"]["again"] = {**lab.host_data(), "endpoints": [endpoint("BAD02")]}
    return yaml.safe_dump(document, sort_keys=False)


def _many_bad_hosts(lab) -> str:
    document = _document(lab)
    for index in range(2000):
        document["hosts"][f"junk{index}"] = {"ssh_port": 0, "endpoints": []}
    return yaml.safe_dump(document, sort_keys=False)


EP = "hosts.{host}.endpoints[0]"
# (id, inventory text from the lab, field named, words in the message)
CASES = [
    ("upstream closes the quoting", lambda lab: _text(lab, upstream='http://127.0.0.1:8080";return 200;#'),
     f"{EP}.upstream", "no spaces"),
    ("upstream adds a directive", lambda lab: _text(lab, upstream="http://127.0.0.1:8080;return"),
     f"{EP}.upstream", "1-65535"),
    ("upstream from a client header", lambda lab: _text(lab, upstream="http://$http_x_target:8080"),
     f"{EP}.upstream", "not a host name"),
    ("upstream user and password", lambda lab: _text(lab, upstream="http://:secret@127.0.0.1:8080"),
     f"{EP}.upstream", "user or password"),
    ("upstream port 0", lambda lab: _text(lab, upstream="http://127.0.0.1:0"), f"{EP}.upstream", "1-65535"),
    ("upstream port 65536", lambda lab: _text(lab, upstream="http://127.0.0.1:65536"), f"{EP}.upstream", "1-65535"),
    ("upstream with a space", lambda lab: _text(lab, upstream="http://127.0.0.1 :8080"), f"{EP}.upstream", "no spaces"),
    ("DN ending in a backslash", lambda lab: _text(lab, {"client_dn_allowlist": ["CN=x\\", "\";return 200;#"]}),
     "settings.client_dn_allowlist[0]", "lone backslash"),
    ("DN as a regular expression", lambda lab: _text(lab, {"client_dn_allowlist": ["~CN="]}),
     "settings.client_dn_allowlist[0]", "regular expression"),
    ("DN in reverse order", lambda lab: _text(lab, {"client_dn_allowlist": ["O=nhs,OU=Devices,CN=proxy"]}),
     "settings.client_dn_allowlist[0]", "'CN=proxy,OU=Devices,O=nhs'"),
    ("DN with a variable", lambda lab: _text(lab, {"client_dn_allowlist": ["CN=$ssl_client_s_dn"]}),
     "settings.client_dn_allowlist[0]", "no place in a client DN"),
    ("two halves of IPv4", lambda lab: _text(lab, {"proxy_addresses": ["0.0.0.0/1", "128.0.0.0/1"]}),
     "settings.proxy_addresses[0]", "is or overlaps 0.0.0.0/8"),
    ("two /16s together", lambda lab: _text(lab, {"proxy_addresses": ["10.0.0.0/16", "10.1.0.0/16"]}),
     "settings.proxy_addresses", "more than a /16"),
    ("wide IPv6", lambda lab: _text(lab, {"proxy_addresses": ["2000::/3"]}), "settings.proxy_addresses",
     "more than a /48"),
    ("scoped IPv6", lambda lab: _text(lab, {"proxy_addresses": ["fe80::1%eth0"]}), "settings.proxy_addresses[0]",
     "IPv6 zone"),
    ("IPv4-mapped IPv6", lambda lab: _text(lab, {"proxy_addresses": ["::ffff:0.0.0.0/96"]}),
     "settings.proxy_addresses[0]", "IPv4-mapped"),
    ("base_dir a system directory", lambda lab: _text(lab, {"base_dir": "/etc/ssl"}), "settings.base_dir",
     "not a directory of this deploy"),
    ("app_dir a system directory", lambda lab: _text(lab, {"app_dir": "/srv"}), "settings.app_dir",
     "not a directory of this deploy"),
    ("app_dir spelt with // over base_dir", lambda lab: _text(lab, {"app_dir": "//etc/bars-receiver"}),
     "settings.app_dir", "overlaps base_dir"),
    ("base_dir with a shell character", lambda lab: _text(lab, {"base_dir": "/etc/bars-$(id)"}),
     "settings.base_dir", "plain path segment"),
    ("listen_port 0443", lambda lab: _settings_line(lab, "listen_port: 0443"), "settings.listen_port",
     "without quotes or leading zeros"),
    ("listen_port on", lambda lab: _settings_line(lab, "listen_port: on"), "settings.listen_port", "YAML 1.2"),
    ("renewal_days yes", lambda lab: _settings_line(lab, "renewal_days: yes"), "settings.renewal_days", "YAML 1.2"),
    ("one machine under two names", _second_host_same_machine, "hosts.again", "reaches the same machine as hosts."),
    ("conventions overridden", lambda lab: _text(lab, {"fqdn_conventions": {"supplier": "{ods}.{supplier}.nhs.uk"}}),
     "settings.fqdn_conventions", "fact of the INT environment, set in group_data/int.py"),
    ("request route overridden", lambda lab: _text(lab, {"request_route": "dir"}), "settings.request_route",
     "fact of the INT environment"),
    ("receiver_path /../", lambda lab: _text(lab, receiver_path="/../"), f"{EP}.receiver_path", "'..' segment"),
    ("receiver_path with NUL", lambda lab: _text(lab, receiver_path="/a\0/"), f"{EP}.receiver_path", "allowed set"),
    ("weak ciphers", lambda lab: _text(lab, {"tls_ciphers": "ALL:!aNULL"}), "settings.tls_ciphers",
     "not one of the allowed TLS 1.2 suites"),
    ("old protocol", lambda lab: _text(lab, {"tls_protocols": ["TLSv1"]}), "settings.tls_protocols[0]", "TLSv1.2"),
    ("ODS with a trailing newline", lambda lab: _text(lab, ods="BAD01\n"), f"{EP}.ods", "not an ODS code"),
    ("e-mail with a newline", lambda lab: _text(lab, {"bars_team_email": "a@nhs.net\nBcc: x@y.example"}),
     "settings.bars_team_email", "not a plain e-mail address"),
    ("non-UTF-8 byte", lambda lab: _text(lab).replace("BAD01", "BAD\udcff01"), "", "is not UTF-8"),
    ("deep nesting", lambda lab: _text(lab) + "extra: " + "[" * 3000 + "]" * 3000 + "\n", "", "nesting deeper"),
    ("alias", lambda lab: _text(lab).replace("environment: int", "environment: &e int\nx: *e"), "", "alias"),
    ("python tag", lambda lab: _text(lab).replace("environment: int", "environment: !!python/name:os.system"), "",
     "is not allowed in an inventory"),
    ("huge junk inventory", _many_bad_hosts, "hosts.junk0.ssh_port", "more problems, not shown"),
]


@pytest.mark.parametrize("make, field, words", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_inventory_is_refused_by_the_cli(good, lab, project, make, field, words):
    text = make(lab)
    path = project.root / "inventories" / "bad.yml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    (project.root / "inventories" / "bad.py").write_text(
        (project.root / "inventories" / "lab.py").read_text().replace("lab.yml", "bad.yml"))
    run = project.deploy(inventory="bad", check=False)
    output = run.output
    where = f"inventories/bad.yml: {field.format(host=lab.name)}" + (": " if field else "")
    assert run.returncode != 0, output[-2000:]
    assert "nothing was done on any host" in output, output[-2000:]
    assert "Traceback" not in output, output[-4000:]
    assert "Connected" not in output, output[-2000:]  # refused before any host was contacted
    lines = [line for line in output.splitlines() if line.startswith("  - ")]
    assert any(line.startswith(f"  - {where}") and words in line for line in lines) or (
        words in output and any(line.startswith(f"  - {where}") for line in lines)), output[-3000:]
    assert len(output.splitlines()) < 120  # capped, even for thousands of problems


def test_nothing_changed_on_the_host_or_in_requests(good, lab, project):
    """Runs last in this module: every bad run above left the host and requests/ as the good deploy did."""
    before_host, before_requests = good
    assert lab.ssh(SNAPSHOT).stdout == before_host
    assert _tree(project.root / "requests") == before_requests
    assert before_requests, "the good deploy wrote a CSR under requests/"


def test_cases_cover_every_class():
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)
