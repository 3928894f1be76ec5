"""Signing keys for provenance: a development CA and a leaf certificate (R12).

``init_keys(dir)`` creates, only where missing, an ES256 (P-256) root CA and a leaf
certificate with EKUs documentSigning and emailProtection for C2PA manifests
(c2pa-python 0.38.1 refuses a leaf whose only EKU is documentSigning; with both the
manifest validates as ``Trusted`` against our root). Production deployments put a
certificate from a real CA in the same place; nothing here is committed to the repo.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

# id-kp-documentSigning (RFC 9336); not named by every cryptography release.
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

ROOT_CERT = "root.pem"
LEAF_CHAIN = "signer-chain.pem"
LEAF_KEY = "signer-key.pem"
ORG = "Digital Human Factory"


@dataclass(frozen=True)
class SigningKeys:
    """Paths of the signing material in one directory."""

    directory: Path

    @property
    def root_cert(self) -> Path:
        return self.directory / ROOT_CERT

    @property
    def chain(self) -> Path:
        return self.directory / LEAF_CHAIN

    @property
    def private_key(self) -> Path:
        return self.directory / LEAF_KEY

    def exist(self) -> bool:
        return all(p.exists() for p in (self.root_cert, self.chain, self.private_key))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def init_keys(directory: str | os.PathLike[str], *, days: int = 825) -> tuple[SigningKeys, bool]:
    """Create a dev root CA and leaf signer in ``directory`` unless present.

    Returns the key paths and whether anything was created.
    """
    keys = SigningKeys(Path(directory))
    if keys.exist():
        return keys, False
    keys.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = _root_cert(root_key, now, days * 2)
    leaf = _leaf_cert(leaf_key, root, root_key, now, days)
    pem = serialization.Encoding.PEM
    keys.root_cert.write_bytes(root.public_bytes(pem))
    keys.chain.write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    private = serialization.PrivateFormat.PKCS8
    _write_private(
        keys.private_key, leaf_key.private_bytes(pem, private, serialization.NoEncryption())
    )
    return keys, True


def _root_cert(key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int) -> x509.Certificate:
    """A self-signed CA that may sign certificates and CRLs, nothing else."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"{ORG} Dev Root CA"))
        .issuer_name(_name(f"{ORG} Dev Root CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _leaf_cert(
    key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    """The C2PA content signer: digital signatures only, EKU documentSigning + email."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"{ORG} Content Signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )


def check_keys(keys: SigningKeys, *, at: dt.datetime | None = None) -> list[str]:
    """Problems with the signing material (empty when usable)."""
    if not keys.exist():
        return [f"signing keys missing in {keys.directory}: run 'dhf keys init'"]
    at = at or dt.datetime.now(dt.UTC)
    problems = []
    chain = x509.load_pem_x509_certificates(keys.chain.read_bytes())
    root = x509.load_pem_x509_certificate(keys.root_cert.read_bytes())
    leaf = chain[0]
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        problems.append("signer certificate is not valid now")
    try:
        leaf.verify_directly_issued_by(root)
    except (ValueError, TypeError) as exc:
        problems.append(f"signer certificate is not issued by the root: {exc}")
    except Exception as exc:  # InvalidSignature
        problems.append(f"signer certificate signature does not verify: {exc!r}")
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if not {DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION} & set(eku):
        problems.append("signer certificate lacks EKU documentSigning or emailProtection")
    key = serialization.load_pem_private_key(keys.private_key.read_bytes(), password=None)
    if key.public_key().public_numbers() != leaf.public_key().public_numbers():  # type: ignore[union-attr]
        problems.append("private key does not belong to the signer certificate")
    return problems
