"""The strict grammars (inventory/grammar.py, inventory/dn.py, inventory/addresses.py): what each accepts, how it rebuilds it,
and that each bad class is refused with what is right."""

from __future__ import annotations

import ipaddress

import pytest

from bars_receiver.inventory import grammar
from bars_receiver.inventory.addresses import check_union, parse_network
from bars_receiver.inventory.dn import normalise_dn


@pytest.mark.parametrize("written, canonical", [
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
    ("HTTP://App.Example.internal:8080", "http://app.example.internal:8080"),
    ("https://[0:0::1]:443", "https://[::1]:443"),
    ("http://localhost", "http://localhost"),
])
def test_upstream_is_rebuilt_from_its_parts(written, canonical):
    assert grammar.upstream(written) == canonical


@pytest.mark.parametrize("value, words", [
    ("http://:pw@127.0.0.1:5000", "user or password"),
    ("http://u@127.0.0.1", "user or password"),
    ("http://127.0.0.1:0", "1-65535"),
    ("http://127.0.0.1:65536", "1-65535"),
    ("http://127.0.0.1:0443", "without leading zeros"),
    ("http://127.0.0.1:", "1-65535"),
    ("http://127.0.0.1 :5000", "no spaces"),
    ("http://127.0.0.1:5000/api", "path, query or fragment"),
    ("http://127.0.0.1:5000?x=1", "path, query or fragment"),
    ("http://127.0.0.1:5000#f", "path, query or fragment"),
    ("http://127.0.0.1:5000;return 200", "no spaces"),
    ("http://127.0.0.1:5000;return", "1-65535"),
    ("http://$http_host:5000", "not a host name"),
    ("http://a'b:5000", "not a host name"),
    ("http://127.0.0.1:5000\";listen 80;#", "no spaces"),
    ("http://127.0.0.1:5000\";listen", "1-65535"),
    ("http://127.0.0.1:5000}", "1-65535"),
    ("http://[fe80::1%eth0]:80", "IPv6 address without zone"),
    ("http://::1:80", "IPv6 address in brackets"),
    ("http://0.0.0.0:80", "not an address nginx can connect to"),
    ("http://127.000.0.1:80", "not an IP address"),
    ("ftp://app", "http(s) URL"),
    ("127.0.0.1:5000", "not a URL"),
    ("http://app\n.example", "no spaces"),
    ("http://bücher.example", "printable ASCII"),
])
def test_bad_upstreams_are_refused(value, words):
    with pytest.raises(ValueError) as raised:
        grammar.upstream(value)
    assert words in str(raised.value)


@pytest.mark.parametrize("written, normalised", [
    ("CN=x,OU=Devices,O=nhs", "CN=x,OU=Devices,O=nhs"),
    ("cn=x, ou=Devices, o=nhs", "CN=x,OU=Devices,O=nhs"),
    ("/O=nhs/OU=Devices/CN=x", "CN=x,OU=Devices,O=nhs"),
    ("CN=a\\,b,O=n", "CN=a\\,b,O=n"),
    ("CN=a\\2Cb", "CN=a\\,b"),
    ("CN=\\#a", "CN=\\#a"),
    ("CN=x\\\",CN=y", "CN=x\\\",CN=y"),
    ("emailAddress=a@b.example,CN=x", "emailAddress=a@b.example,CN=x"),
])
def test_dn_is_normalised_to_nginx_form(written, normalised):
    assert normalise_dn(written) == normalised


@pytest.mark.parametrize("value, words", [
    ("~CN=", "regular expression"),
    ("O=nhs,OU=Devices,CN=x", "'CN=x,OU=Devices,O=nhs'"),
    ("CN=x\\", "lone backslash"),
    ('CN="x"', "must be escaped"),
    ("CN=$host", "no place in a client DN"),
    ("CN={x}", "no place in a client DN"),
    ("CN=x\nO=y", "printable ASCII"),
    ("CN=x+UID=1", "multi-valued"),
    ("X=1", "not one nginx prints"),
    ("CN=", "empty value"),
    ("nonsense", "not type=value"),
])
def test_bad_dns_are_refused(value, words):
    with pytest.raises(ValueError) as raised:
        normalise_dn(value)
    assert words in str(raised.value)


@pytest.mark.parametrize("written, normalised", [
    ("/etc/bars-receiver", "/etc/bars-receiver"),
    ("//etc/bars-receiver/", "/etc/bars-receiver"),
    ("/etc/./bars-receiver", "/etc/bars-receiver"),
    ("/srv/bars", "/srv/bars"),
])
def test_deploy_dirs_are_normalised(written, normalised):
    assert grammar.deploy_dir(written) == normalised


@pytest.mark.parametrize("value, words", [
    ("/", "not a directory of this deploy"),
    ("//", "not a directory of this deploy"),
    ("/etc/ssl", "not a directory of this deploy"),
    ("/srv", "not a directory of this deploy"),
    ("/etc", "not a directory of this deploy"),
    ("/usr/local/lib", "not a directory of this deploy"),
    ("/etc/bars/../ssl", "contains '..'"),
    ("/tmp/bars", "does not survive a reboot"),
    ("/run/bars", "does not survive a reboot"),
    ("etc/bars", "absolute"),
    ("/etc/bars receiver", "plain path segment"),
    ("/etc/bars$x", "plain path segment"),
    ("/etc/-bars", "plain path segment"),
    ("/etc/bars\x00", "plain path segment"),
])
def test_bad_deploy_dirs_are_refused(value, words):
    with pytest.raises(ValueError) as raised:
        grammar.deploy_dir(value)
    assert words in str(raised.value)


def test_overlap_is_found_after_normalisation():
    a, b = grammar.deploy_dir("//etc/bars-receiver"), grammar.deploy_dir("/etc/./bars-receiver/")
    assert grammar.overlaps(a, b) and grammar.overlaps(b, a)
    assert grammar.overlaps("/etc/bars-receiver", "/etc/bars-receiver/bars-app")
    assert not grammar.overlaps("/etc/bars-receiver", "/etc/bars-receiver-app")


@pytest.mark.parametrize("value", [
    "/etc/bars-receiver/bars-app",  # inside another deploy directory
    "/home/bars", "/etc/nginx/conf.d/bars", "/etc/sudoers.d/bars", "/usr/lib/systemd/system/bars",
    "/etc/bars.conf", "/etc/profile.d/bars.sh", "/ETC/bars", "/etc/Bars-receiver",
])
def test_deploy_dirs_sit_directly_under_an_allowed_parent_with_a_plain_bars_name(value):
    with pytest.raises(ValueError, match="directly under /etc, /srv, /opt, /var/lib"):
        grammar.deploy_dir(value)


@pytest.mark.parametrize("value", ["/etc/bars-receiver", "/srv/bars_int", "/opt/bars", "/var/lib/bars-receiver-app"])
def test_deploy_dirs_that_are_accepted(value):
    assert grammar.deploy_dir(value) == value


@pytest.mark.parametrize("value", ["PATH", "CI_JOB_TOKEN", "AWS_SECRET_ACCESS_KEY", "BARS_", "HOME"])
def test_secret_variables_must_be_the_deploys_own(value):
    with pytest.raises(ValueError, match="does not start with 'BARS_'"):
        grammar.env_name(value)


@pytest.mark.parametrize("value", [
    "http://169.254.169.254", "http://255.255.255.255", "https://[fe80::1]", "http://[::ffff:127.0.0.1]",
    "http://[::127.0.0.1]", "http://240.0.0.1:80",
])
def test_upstreams_nginx_should_never_call_are_refused(value):
    with pytest.raises(ValueError):
        grammar.upstream(value)


@pytest.mark.parametrize("value", ["/", "/bars/", "/a.b/c-d_e~f/"])
def test_receiver_paths(value):
    assert grammar.receiver_path(value) == value


@pytest.mark.parametrize("value", ["/../", "/./", "/a//b/", "/a\x00/", "/a%2e/", "/a b/", "/bars", "bars/",
                                   "/a;b/", "/$x/", "/{x}/", "/a'/", "/a\\/",
                                   "/__bars_error/", "/__bars_error/x/", "/__bars_errors/"])
def test_bad_receiver_paths(value):
    with pytest.raises(ValueError):
        grammar.receiver_path(value)


@pytest.mark.parametrize("value", [
    "ALL:!aNULL", "DEFAULT", "HIGH", "ECDHE-RSA-AES128-GCM-SHA256:!RC4", "RC4-SHA", "DES-CBC3-SHA",
    "ECDHE-RSA-AES128-SHA", "EXP-RC4-MD5", "ECDHE-RSA-AES128-GCM-SHA256:@STRENGTH",
    "+ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", "",
    "ECDHE-RSA-AES128-GCM-SHA256;", "aNULL",
])
def test_weak_or_keyword_cipher_lists_are_refused(value):
    with pytest.raises(ValueError):
        grammar.cipher_list(value)


def test_strong_cipher_list_is_kept():
    value = ":".join(grammar.STRONG_CIPHERS)
    assert grammar.cipher_list(value) == value


@pytest.mark.parametrize("value, words", [
    ("fe80::1%eth0", "IPv6 zone"),
    ("::ffff:10.0.0.1", "IPv4-mapped"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("0.0.0.0", "'this network'"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "reserved"),
    ("169.254.1.1", "link-local"),
    ("fe80::/64", "link-local"),
    ("0.0.0.0/0", "whole internet"),
    ("::/0", "whole internet"),
    (443, "not an address"),
])
def test_bad_proxy_addresses_are_refused(value, words):
    with pytest.raises(ValueError) as raised:
        parse_network(value)
    assert words in str(raised.value)


def test_loopback_stays_allowed_for_the_lab():
    assert str(parse_network("127.0.0.2")) == "127.0.0.2/32"
    assert str(parse_network("::1")) == "::1/128"


@pytest.mark.parametrize("entries", [
    ["0.0.0.0/1", "128.0.0.0/1"],
    ["10.0.0.0/8"],
    ["10.0.0.0/16", "10.1.0.0/32"],
    ["2001:db8::/47"],
    ["2001:db8::/48", "2001:db9::/128"],
])
def test_union_wider_than_the_bound_is_refused(entries):
    with pytest.raises(ValueError, match="more than a /"):
        check_union([ipaddress.ip_network(e) for e in entries])


def test_union_at_the_bound_is_allowed():
    check_union([ipaddress.ip_network("10.0.0.0/17"), ipaddress.ip_network("10.0.128.0/17"),
                 ipaddress.ip_network("10.0.0.1"), ipaddress.ip_network("2001:db8::/48")])


@pytest.mark.parametrize("value", ["dir@nhs.net", "england.bookingandreferralstandard@nhs.net", "a+b@x.example"])
def test_emails(value):
    assert grammar.email(value) == value


@pytest.mark.parametrize("value", ["dir", "dir@nhs", "a b@nhs.net", "a@nhs.net\n", "a;b@nhs.net", "a@@nhs.net",
                                   "\"a\"@nhs.net", "a@-nhs.net"])
def test_bad_emails(value):
    with pytest.raises(ValueError):
        grammar.email(value)


@pytest.mark.parametrize("value", ["BaRS-INT-{ods}.{supplier}.nhs.uk\n", "BaRS-{0}.{supplier}.nhs.uk",
                                   "{ods}.{supplier.__class__}.nhs.uk", "{ods}.{supplier}.example.com",
                                   "{ods}.{supplier}.{supplier}.nhs.uk", "{ods} {supplier}.nhs.uk"])
def test_bad_conventions(value):
    with pytest.raises(ValueError):
        grammar.fqdn_convention(value, "supplier")


def test_repository_file_is_normalised_and_confined():
    assert grammar.repository_file("files//crl/./int.crl", "files/crl/int.crl") == "files/crl/int.crl"
    for bad in ("/etc/passwd", "../x.crl", "files/../../x", "files/", "files/a b.crl"):
        with pytest.raises(ValueError):
            grammar.repository_file(bad, "files/crl/int.crl")
