"""Chain and leaf verification of an issued certificate, by cryptography's ``x509.verification``.

Why a library: path validation (names, signatures, validity of every certificate, CA key usage,
basic constraints and path lengths, unknown critical extensions, signature algorithms, key sizes)
is easy to get subtly wrong by hand; cryptography's verifier is maintained by people whose job
is exactly this. It decides; :func:`explain` only puts a refusal into words afterwards and never
accepts what the verifier refused.

The verifier's webpki profile is for web server certificates; NHS endpoint certificates differ,
so some of its extension rules are replaced (each replacement says why, below):

- NHS leaves carry the FQDN as their CN and no subjectAltName, which the server verifier cannot
  accept (it insists on a subjectAltName), so the *client* verifier runs with our own leaf rules;
  the CN == FQDN rule stays in ``issued._check_cn``.
- The leaf must allow TLS server use (EKU serverAuth, when it has an EKU) because the endpoint
  presents it to the BaRS proxy; the client verifier would ask for clientAuth instead.
- A CA's keyUsage is checked as RFC 5280 path validation does (6.1.4 (n)): if present, it must
  assert keyCertSign. webpki also refuses a CA without a keyUsage; OpenSSL, and so nginx and the
  BaRS proxy, accept one, so the deploy does too.
- Rules about how a certificate is *written* rather than whether it may be trusted are relaxed to
  what RFC 5280 path validation (section 6) and OpenSSL check: a CA's basicConstraints must be
  present with cA TRUE but may be non-critical, and authorityKeyIdentifier (leaf or CA) is optional
  and not inspected. The real NHS CA certificates are not in this repository to test against, and
  a rule that nginx and the BaRS proxy do not apply would only refuse working certificates.

Everything else is webpki's: every signature (SHA-1 and MD5 refused, signing RSA keys of at
least 2048 bits), every validity period, cA TRUE and pathlen on every CA, keyUsage keyCertSign on
a CA that has a keyUsage, no keyCertSign on the leaf, and any critical extension the policy does
not know refused, on the leaf and on every CA.
"""

from __future__ import annotations

import re
from datetime import datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

MAX_DEPTH = 6  # CAs above the leaf; NHS chains have two (sub CA, root)
MIN_RSA_BITS = 2048  # the verifier's own minimum for a key that signs, named here for the message
# The extensions the policies account for; any other extension marked critical is refused.
KNOWN_EXTENSIONS = frozenset({
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.KEY_USAGE, ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.NAME_CONSTRAINTS, ExtensionOID.EXTENDED_KEY_USAGE,
})


class Refused(Exception):
    """The verifier refused the certificate; the message is its reason in plain words."""


def subject(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())


# ------------------------------------------------------------------ the policy

def _leaf_usage(_policy, _cert, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        raise ValueError("the leaf's extended key usage lacks serverAuth")


def _leaf_key_usage(_policy, _cert, ku: x509.KeyUsage | None) -> None:
    if ku is None:
        return
    if ku.key_cert_sign:
        raise ValueError("the leaf's key usage asserts keyCertSign, which only a CA may")
    if not (ku.digital_signature or ku.key_encipherment):
        raise ValueError("the leaf's key usage has neither digitalSignature nor keyEncipherment")


def _leaf_names(fqdn: str):
    """A subjectAltName is optional (NHS leaves have none); if there is one, clients match the
    FQDN against it and ignore the CN, so it must name the FQDN."""
    def check(_policy, _cert, san: x509.SubjectAlternativeName | None) -> None:
        if san is not None and fqdn.lower() not in (name.lower() for name in san.get_values_for_type(x509.DNSName)):
            raise ValueError(f"the leaf's subjectAltName does not name {fqdn}")
    return check


def _ca_key_usage(_policy, _cert, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("a CA's key usage lacks keyCertSign")


def _ca_usage(_policy, _cert, eku: x509.ExtendedKeyUsage | None) -> None:
    """An EKU on a CA limits what it may issue for, as OpenSSL reads it: serverAuth must be in it."""
    if eku is not None and not ({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(eku)):
        raise ValueError("a CA's extended key usage lacks serverAuth")


def _policies(fqdn: str) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(CA policy, leaf policy): webpki's defaults with the NHS replacements in the module doc."""
    ca = (ExtensionPolicy.webpki_defaults_ca()
          .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
          .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
          .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
          .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ca_usage))
    leaf = (ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, _leaf_names(fqdn))
            .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
            .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _leaf_usage)
            .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _leaf_key_usage))
    return ca, leaf


def verify(leaf: x509.Certificate, cas: list[x509.Certificate], fqdn: str, now: datetime) -> list[x509.Certificate]:
    """The verified path ``[leaf, sub CA..., root]``; raises :class:`Refused`.

    ``cas`` is the environment's whole bundle: its self-issued roots are the only trust anchors,
    the others are offered as intermediates.
    """
    roots = [ca for ca in cas if ca.subject == ca.issuer]
    if not roots:
        raise Refused("the CA bundle holds no root (self-issued) CA certificate to anchor the chain")
    ca_policy, leaf_policy = _policies(fqdn)
    verifier = (PolicyBuilder().store(Store(roots)).time(now).max_chain_depth(MAX_DEPTH)
                .extension_policies(ca_policy=ca_policy, ee_policy=leaf_policy)
                .build_client_verifier())
    try:
        return verifier.verify(leaf, [ca for ca in cas if ca.subject != ca.issuer]).chain
    except VerificationError as error:
        raise Refused(_plain(error)) from None


def _plain(error: VerificationError) -> str:
    text = re.sub(r"\s*\(encountered processing <Certificate\(.*$", "", str(error), flags=re.S)
    for noise in ("validation failed: ", "candidates exhausted: ", "Python extension validator failed: ValueError: "):
        text = text.replace(noise, "")
    return text.strip() or "no reason given"


# ------------------------------------------------------------------ refusals in words

# Broken signature hashes, by signature algorithm: refused wherever they sign (the verifier refuses
# them too; this names them). The one place for this rule and its message.
WEAK_SIGNATURES = MappingProxyType({
    x509.SignatureAlgorithmOID.RSA_WITH_SHA1: "SHA-1 (sha1WithRSAEncryption)",
    x509.SignatureAlgorithmOID._RSA_WITH_SHA1: "SHA-1 (sha1WithRSA)",
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA1: "SHA-1 (ecdsa-with-SHA1)",
    x509.SignatureAlgorithmOID.DSA_WITH_SHA1: "SHA-1 (dsaWithSHA1)",
    x509.SignatureAlgorithmOID.RSA_WITH_MD5: "MD5 (md5WithRSAEncryption)",
})


def weak_signature(cert: x509.Certificate, what: str) -> str | None:
    """Why ``cert`` (``what``: "it" or "CA '...'") is refused if it is signed with SHA-1 or MD5, else None."""
    weak = WEAK_SIGNATURES.get(cert.signature_algorithm_oid)
    if weak is None:
        return None
    return (
        f"is refused: {what} is signed with {weak}, which is no longer accepted for TLS certificates: SHA-1 "
        "and MD5 signatures are refused because they can be forged. Ask NHS England to reissue it signed "
        "with SHA-256 (for a CA, commit its current SHA-256 certificate)"
    )


def explain(leaf: x509.Certificate, path: list[x509.Certificate]) -> str | None:
    """Why the verifier refused ``leaf`` over ``path`` ([sub CA..., root], as the names and
    signatures chain), for the rules the hand-written checks do not cover; None if unknown."""
    chain = [("it", leaf)] + [(f"CA {subject(ca)}", ca) for ca in path]
    for what, cert in chain[:-1]:  # a root's own signature is not checked: the pin vouches for it
        message = weak_signature(cert, what)
        if message:
            return message
    for what, cert in chain:
        key = cert.public_key()
        if cert is not leaf and isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            return (f"is refused: {what} has a {key.key_size}-bit RSA key; signatures made with a key under "
                    f"{MIN_RSA_BITS} bits are refused: commit the CA's current certificate, or ask NHS England")
        for extension in cert.extensions:
            if extension.critical and extension.oid not in KNOWN_EXTENSIONS:
                name = getattr(extension.oid, "_name", "unknown")
                return (f"is refused: {what} carries the critical extension {extension.oid.dotted_string} "
                        f"({name}), which this deploy (and so path validation) does not understand; a critical "
                        "extension that is not understood must be refused (RFC 5280 4.2): ask NHS England why "
                        "the certificate carries it")
    for depth, ca in enumerate(path):  # ``depth`` CAs lie between this one and the leaf
        what = f"CA {subject(ca)}"
        try:
            ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            ku = None
        if ku is not None and not ku.key_cert_sign:
            return (f"is refused: {what} has a key usage without keyCertSign, so it may not sign certificates "
                    "(RFC 5280 6.1.4 (n)); the CA file is wrong or is not a CA that issues endpoint certificates: "
                    "check the CA certificates against NHS England's")
        try:
            limit = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        except x509.ExtensionNotFound:  # not in a bundle: load_ca_bundle refuses CA files without it
            limit = None
        if limit is not None and depth > limit:
            return (f"is refused: {what} allows {limit} CA(s) below it (basicConstraints pathlen:{limit}) but the "
                    f"path to this certificate has {depth}; the chain is not one NHS England issues: check the CA "
                    "certificates in the bundle")
    return None
