"""The project's own certificate authority: the broker's server certificate and kiosk client
certificates, made with ``cryptography`` (ECDSA P-256).

The CA key never leaves the admin's machine; only ``ca.pem`` goes into kiosk bundles.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"


class PkiError(ValueError):
    """The CA folder is missing, or would be overwritten."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CommunityShare"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def init_ca(directory: Path, *, days: int = 3650, now: datetime | None = None) -> Issued:
    """Create the CA in ``directory`` (refuses to overwrite one)."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() or key_path.exists():
        raise PkiError(f"a CA already exists in {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("CommunityShare fleet CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path)


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise PkiError(f"no CA in {ca_dir}: run `cs-admin ca init {ca_dir}` first") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{ca_dir / CA_KEY} is not an EC key")
    return cert, key


def _issue(
    ca_dir: Path,
    out_dir: Path,
    stem: str,
    common_name: str,
    *,
    hosts: list[str],
    usage: x509.ObjectIdentifier,
    days: int,
) -> Issued:
    ca_cert, ca_key = _load_ca(ca_dir)
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out_dir.mkdir(parents=True, exist_ok=True)
    issued = Issued(out_dir / f"{stem}.pem", out_dir / f"{stem}.key")
    _write_key(issued.key, key)
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def issue_server(ca_dir: Path, out_dir: Path, hosts: list[str], *, days: int = 825) -> Issued:
    """The broker's (or central's HTTPS) server certificate for ``hosts`` (names or IPs)."""
    if not hosts:
        raise PkiError("a server certificate needs at least one --host")
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() != ca_dir.resolve():
        # The broker's TLS folder holds the CA certificate beside its own, never the CA key.
        (out_dir / CA_CERT).write_bytes((ca_dir / CA_CERT).read_bytes())
    return _issue(
        ca_dir,
        out_dir,
        "server",
        hosts[0],
        hosts=hosts,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
    )


def issue_client(ca_dir: Path, out_dir: Path, username: str, *, days: int = 825) -> Issued:
    """A client certificate whose common name is the broker username."""
    return _issue(
        ca_dir,
        out_dir,
        username,
        username,
        hosts=[],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
    )
