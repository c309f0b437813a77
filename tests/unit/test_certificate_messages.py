"""Messages that used to point at the wrong cause: a SHA-1-signed leaf, an empty CA directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from .test_certificates import FQDN, INT_SUB, KEYS, check, csr_pem, pem, project, refusal, save  # noqa: F401


def _sha1_leaf(tmp: Path) -> bytes:
    """A leaf signed by the INT sub CA with SHA-1 (cryptography will not sign with SHA-1; openssl can)."""
    (tmp / "sub.key").write_bytes(KEYS["int_sub"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp / "sub.pem").write_bytes(pem(INT_SUB))
    (tmp / "leaf.csr").write_bytes(csr_pem(KEYS["leaf"]))
    (tmp / "ext").write_text("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", tmp / "leaf.csr", "-CA", tmp / "sub.pem", "-CAkey",
                    tmp / "sub.key", "-sha1", "-days", "30", "-set_serial", "7", "-extfile", tmp / "ext",
                    "-out", tmp / "leaf.pem"], check=True, capture_output=True)
    return (tmp / "leaf.pem").read_bytes()


def test_sha1_signed_leaf_is_named_as_such(project, tmp_path_factory):
    message = refusal(project, _sha1_leaf(tmp_path_factory.mktemp("sha1")))
    assert "is signed with SHA-1" in message and "reissue it signed with SHA-256" in message
    assert "does not verify" not in message and "not issued by this environment" not in message


def test_empty_ca_directory_is_named_as_such(project):
    for path in (project / "files" / "ca" / "int").iterdir():
        path.unlink()
    (project / "files" / "ca" / "int" / "README.txt").write_text("put CA files here")
    save(project, b"not even a certificate")
    result = check(project)
    assert result.problems == []
    assert result.refused[FQDN].startswith("files/ca/int/: holds no CA certificates (only README.txt, not read), so "
                                   f"files/certs/int/{FQDN}.cer cannot be checked")
