"""The application is told: after a renewal its PFX-reading stand-in presents the new certificate,
restarted by the deploy, with no person involved.

The lab host carries lab/pfx_app.py as bars-lab-pfx-app@<fqdn>.service: it reads the PKCS#12 named
by kestrel.env once, at start, and serves HTTPS with it on 127.0.0.1:9443, as Kestrel would. The
endpoint names that unit in app_unit; the lab CA plays NHS England through activation and renewal.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography import x509

from lab.project import endpoint, fqdn

APP = fqdn("APP01")
PLAIN = fqdn("APP02")
UNIT = f"bars-lab-pfx-app@{APP}.service"


def presented_serial(lab) -> int:
    """The serial of the certificate the stand-in application presents (waits for it to listen)."""
    for _ in range(40):
        result = lab.netns_run(["openssl", "s_client", "-connect", "127.0.0.1:9443", "-servername", APP],
                               input="", capture_output=True, text=True, timeout=20)
        if "-----BEGIN CERTIFICATE-----" in result.stdout:
            return x509.load_pem_x509_certificates(result.stdout.encode())[0].serial_number
        time.sleep(0.25)
    raise AssertionError(f"the application does not answer on 9443: {result.stderr[-500:]}")


def main_pid(lab) -> str:
    return lab.ssh(f"systemctl show -p MainPID --value {UNIT}").stdout.strip()


def cer(project):
    return project.root / "files" / "certs" / "test" / f"{APP}.cer"


@pytest.fixture(scope="module")
def activated(lab, project, ca):
    """APP01 names the stand-in's unit; its first certificate expires inside renewal_days."""
    project.write_inventory([endpoint("APP01", app_unit=UNIT, app_action="restart"), endpoint("APP02")],
                            settings={"renewal_days": 30})
    requested = project.deploy()
    before = lab.ssh(f"systemctl is-active {UNIT}", check=False).stdout.strip()
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    for name in (APP, PLAIN):
        ca.sign_csr_file(project.root / "requests" / "test" / f"{name}.csr", project.root, "test",
                         not_before=start, not_after=start + dt.timedelta(days=11))
    return (requested, before), project.deploy()


def test_no_certificate_no_application_action(activated, lab):
    (requested, state), _ = activated
    assert f"{UNIT} (its certificate changed)" not in requested.output
    assert state == "inactive"  # no PFX yet: the application was not started


def test_the_first_pfx_starts_the_application_with_its_certificate(activated, lab, project):
    _, run = activated
    assert lab.ssh(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    first = x509.load_pem_x509_certificates(cer(project).read_bytes())[0]
    assert presented_serial(lab) == first.serial_number


def test_an_unchanged_run_leaves_the_application_alone(activated, lab, project):
    pid = main_pid(lab)
    run = project.deploy()
    assert run.changed == 0, run.output[-3000:]
    assert main_pid(lab) == pid


def test_after_a_renewal_the_application_presents_the_new_certificate(activated, lab, project, ca):
    before_pid = main_pid(lab)
    next_csr = project.root / "requests" / "test" / f"{APP}.next.csr"
    assert next_csr.exists()  # the renewing run staged the next key and wrote its pack
    renewed = ca.sign_csr_file(next_csr, project.root, "test")  # NHS England answers the renewal ...
    renewed.rename(cer(project))  # ... and ops save it over the live .cer, as the README says
    run = project.deploy()
    assert f"Restart {UNIT}" in run.output, run.output[-6000:]
    new = x509.load_pem_x509_certificates(cer(project).read_bytes())[0]
    assert presented_serial(lab) == new.serial_number  # no person restarted anything
    assert main_pid(lab) != before_pid
    assert project.deploy().changed == 0


def test_an_application_that_does_not_come_up_fails_the_run(activated, lab, project, ca):
    """The unit is checked active after the restart: a broken application is not reported as fine."""
    lab.ssh(f"mkdir -p /etc/systemd/system/{UNIT}.d && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n"
            f"Type=oneshot\\nRemainAfterExit=no\\n' > /etc/systemd/system/{UNIT}.d/broken.conf && systemctl daemon-reload")
    try:
        ca.sign_csr_file(project.root / "requests" / "test" / f"{APP}.csr", project.root, "test")
        run = project.deploy(check=False)
        assert run.returncode != 0
        assert f"{UNIT}" in run.output and ("systemctl restart failed" in run.output or "not active" in run.output)
    finally:
        lab.ssh(f"rm -r /etc/systemd/system/{UNIT}.d && systemctl daemon-reload")


def test_the_next_run_tells_an_application_an_earlier_run_could_not(activated, lab, project):
    """The run above rebuilt the PFX but the application did not come up. Nothing on the controller
    remembers that; the host's record of what the unit was told does, so the next run restarts it
    with no change of its own, and the run after that changes nothing."""
    assert lab.ssh(f"systemctl is-active {UNIT}", check=False).stdout.strip() != "active"
    run = project.deploy()
    assert f"Restart {UNIT}" in run.output, run.output[-4000:]
    assert lab.ssh(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    current = x509.load_pem_x509_certificates(cer(project).read_bytes())[0]
    assert presented_serial(lab) == current.serial_number
    assert lab.ssh(f"stat -c '%a %U' /etc/bars-receiver/.app-told/{UNIT}").stdout.split() == ["600", "root"]
    assert project.deploy().changed == 0
