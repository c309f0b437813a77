"""A lab CA that issues certificates shaped like NHS England's, for rehearsing the workflow.

Why: the deploy's certificate step (verify, install, PKCS#12, TLS-MA) can only be exercised with
a certificate chained to the inventory's CA bundle. This CA plays NHS England for the lab.

Layout:
  /var/lib/bars-lab/_ca/            private state, 0700, never in the repo
    root.key, sub.key               the lab root and sub CA keys (0600)
    root.pem, sub.pem               their certificates
    rogue-root.key/.pem,            a second, untrusted CA for "wrong CA" client certificates
    rogue-sub.key/.pem
  files/ca/<inventory>/             lab-root.pem, lab-sub.pem: the public CA certificates only

The CA is generated on first use on each machine and kept (the leading underscore keeps the
directory out of lab.host's namespace, whose lab names cannot start with one). Its public
certificates are written into the checkout on demand rather than committed, because they are only
meaningful together with this machine's private keys.

CLI (from the repo root):
  python -m lab.ca init [--inventory lab]                 make the CA, write files/ca/lab/
  python -m lab.ca sign requests/lab/*.csr [--days 365]   write files/certs/lab/<fqdn>.cer
  python -m lab.ca client --cn NAME --kind good|wrong-ca|expired --out DIR
                                                          client.key + client.pem (+ chain) for TLS-MA tests
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

STATE_DIR = Path("/var/lib/bars-lab/_ca")
REPO = Path(__file__).resolve().parent.parent
ROOT_NAME = "BaRS Lab Root Authority"
SUB_NAME = "BaRS Lab Authentication"
ROGUE_ROOT_NAME = "BaRS Lab Rogue Root"
ROGUE_SUB_NAME = "BaRS Lab Rogue Authentication"
KEY_BITS = 2048


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "BaRS lab (not NHS)"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def nhs_subject(cn: str) -> x509.Name:
    """The subject NHS England puts on endpoint certificates: O=nhs, OU=Devices, CN=<fqdn>."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhs"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Devices"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _ca_cert(subject: x509.Name, key, issuer: x509.Name, issuer_key, days: int, path_length: int | None):
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def endpoint_certificate(public_key, cn: str, issuer: x509.Certificate, issuer_key,
                         not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
                         days: int = 365, client_only: bool = False) -> x509.Certificate:
    """A certificate like NHS England's: O=nhs, OU=Devices, CN=<cn>, no SAN, EKU serverAuth + clientAuth."""
    not_before = not_before or _now() - dt.timedelta(minutes=5)
    not_after = not_after or not_before + dt.timedelta(days=days)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client_only else [ExtendedKeyUsageOID.SERVER_AUTH,
                                                                    ExtendedKeyUsageOID.CLIENT_AUTH]
    return (
        x509.CertificateBuilder()
        .subject_name(nhs_subject(cn)).issuer_name(issuer.subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class Authority:
    """A root and a sub CA; the sub CA signs endpoint and client certificates."""

    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    sub: x509.Certificate
    sub_key: rsa.RSAPrivateKey

    @classmethod
    def create(cls, root_name: str = ROOT_NAME, sub_name: str = SUB_NAME) -> "Authority":
        root_key, sub_key = new_key(), new_key()
        root = _ca_cert(_name(root_name), root_key, _name(root_name), root_key, days=3650, path_length=1)
        sub = _ca_cert(_name(sub_name), sub_key, root.subject, root_key, days=1825, path_length=0)
        return cls(root, root_key, sub, sub_key)

    @classmethod
    def load_or_create(cls, state_dir: Path, prefix: str = "", root_name: str = ROOT_NAME,
                       sub_name: str = SUB_NAME) -> "Authority":
        """Keys and certificates kept 0600 in a 0700 ``state_dir``; created once."""
        files = {part: state_dir / f"{prefix}{part}" for part in ("root.key", "root.pem", "sub.key", "sub.pem")}
        if all(path.exists() for path in files.values()):
            return cls(
                x509.load_pem_x509_certificate(files["root.pem"].read_bytes()),
                serialization.load_pem_private_key(files["root.key"].read_bytes(), None),
                x509.load_pem_x509_certificate(files["sub.pem"].read_bytes()),
                serialization.load_pem_private_key(files["sub.key"].read_bytes(), None),
            )
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
        authority = cls.create(root_name, sub_name)
        for part, data in (("root.key", _key_pem(authority.root_key)), ("root.pem", _pem(authority.root)),
                           ("sub.key", _key_pem(authority.sub_key)), ("sub.pem", _pem(authority.sub))):
            _write(files[part], data, 0o600)
        return authority

    def write_bundle(self, ca_dir: Path) -> list[Path]:
        """The public CA certificates, as ops would commit NHS England's: lab-root.pem, lab-sub.pem."""
        paths = [ca_dir / "lab-root.pem", ca_dir / "lab-sub.pem"]
        for path, cert in zip(paths, (self.root, self.sub)):
            if not path.exists() or path.read_bytes() != _pem(cert):
                _write(path, _pem(cert), 0o644)
        return paths

    def sign_csr(self, csr_pem: bytes, **validity) -> x509.Certificate:
        """Sign a CSR the way NHS England does: the CSR's CN, NHS-shaped subject, the CSR's key."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature is not valid")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1:
            raise ValueError(f"the CSR subject must hold one CN, not {csr.subject.rfc4514_string()!r}")
        return endpoint_certificate(csr.public_key(), names[0].value, self.sub, self.sub_key, **validity)

    def chain_pem(self, cert: x509.Certificate) -> bytes:
        return _pem(cert) + _pem(self.sub)

    def issue_client(self, cn: str, **validity) -> tuple[bytes, bytes]:
        """(key PEM, certificate + sub CA PEM) for a TLS-MA client such as the BaRS proxy."""
        key = new_key()
        cert = endpoint_certificate(key.public_key(), cn, self.sub, self.sub_key, **validity)
        return _key_pem(key), self.chain_pem(cert)

    def crls_pem(self, revoked: tuple[int, ...] = (), days: int = 7) -> bytes:
        """One CRL from each CA, as nginx needs for the whole chain: the root's (revoking nothing)
        then the sub CA's, revoking the certificates with the ``revoked`` serial numbers."""
        now = _now()
        out = b""
        for issuer, key, serials in ((self.root, self.root_key, ()), (self.sub, self.sub_key, revoked)):
            builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
                       .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=days)))
            for serial in serials:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
            out += builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        return out


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(b"")
    os.chmod(temp, mode)
    temp.write_bytes(data)
    os.replace(temp, path)


class LabCA:
    """The trusted lab CA and an untrusted rogue one, kept in ``state_dir``."""

    def __init__(self, state_dir: Path = STATE_DIR):
        self.state_dir = state_dir
        self.authority = Authority.load_or_create(state_dir)
        self._rogue: Authority | None = None

    @property
    def rogue(self) -> Authority:
        if self._rogue is None:
            self._rogue = Authority.load_or_create(self.state_dir, "rogue-", ROGUE_ROOT_NAME, ROGUE_SUB_NAME)
        return self._rogue

    def write_bundle(self, project_dir: Path = REPO, inventory: str = "lab") -> list[Path]:
        return self.authority.write_bundle(project_dir / "files" / "ca" / inventory)

    def sign_csr_file(self, csr_path: Path, project_dir: Path | None = None, inventory: str | None = None,
                      **validity) -> Path:
        """<project>/requests/<inventory>/<fqdn>.csr -> <project>/files/certs/<inventory>/<fqdn>.cer
        (leaf + sub CA, PEM); also writes the CA's public certificates to files/ca/<inventory>/."""
        csr_path = csr_path.resolve()
        inventory = inventory or csr_path.parent.name
        project_dir = project_dir or csr_path.parents[2]
        self.write_bundle(project_dir, inventory)
        cert = self.authority.sign_csr(csr_path.read_bytes(), **validity)
        fqdn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        out = project_dir / "files" / "certs" / inventory / f"{fqdn}.cer"
        _write(out, self.authority.chain_pem(cert), 0o644)
        return out

    def issue_client(self, cn: str, kind: str = "good") -> tuple[bytes, bytes]:
        """Client key and chain: ``good`` (lab CA), ``wrong-ca`` (rogue CA) or ``expired`` (lab CA, past)."""
        if kind == "good":
            return self.authority.issue_client(cn)
        if kind == "wrong-ca":
            return self.rogue.issue_client(cn)
        if kind == "expired":
            start = _now() - dt.timedelta(days=40)
            return self.authority.issue_client(cn, not_before=start, not_after=start + dt.timedelta(days=30))
        raise ValueError(f"unknown client certificate kind {kind!r}; use good, wrong-ca or expired")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.ca", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help=f"private CA state (default {STATE_DIR})")
    parser.add_argument("--project", type=Path, default=None,
                        help="project checkout (default: the one holding the CSR, or this one)")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="make the lab CA if needed and write its public certificates")
    init.add_argument("--inventory", default="lab")
    sign = sub.add_parser("sign", help="sign CSRs from requests/<inventory>/ into files/certs/<inventory>/")
    sign.add_argument("csrs", nargs="+", type=Path)
    sign.add_argument("--days", type=int, default=365)
    client = sub.add_parser("client", help="issue a TLS-MA client certificate")
    client.add_argument("--cn", required=True)
    client.add_argument("--kind", choices=("good", "wrong-ca", "expired"), default="good")
    client.add_argument("--out", type=Path, required=True, help="directory for client.key and client.pem")
    args = parser.parse_args(argv)
    try:
        ca = LabCA(args.state_dir)
        if args.command == "init":
            for path in ca.write_bundle(args.project or REPO, args.inventory):
                print(path)
        elif args.command == "sign":
            for csr in args.csrs:
                print(ca.sign_csr_file(csr, args.project, days=args.days))
        else:
            key, chain = ca.issue_client(args.cn, args.kind)
            _write(args.out / "client.key", key, 0o600)
            _write(args.out / "client.pem", chain, 0o644)
            print(args.out / "client.pem")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
