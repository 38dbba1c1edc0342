"""HTTPS for both services: certificates made at first start, and the contexts that use them.

With `SCANHUB_TLS=on` and no certificate of your own (`SCANHUB_TLS_CERTIFICATE` /
`SCANHUB_TLS_KEY`), a service serves HTTPS with a certificate it issues itself at start-up
from a small certificate authority kept in `SCANHUB_TLS_CA_DIR` (default: the TLS directory
itself, `SCANHUB_TLS_DIR`): `ca.pem` and `ca.key`, made by the first service that finds none.
Services that share that directory (a volume in compose, a Secret in Kubernetes) share the
CA, so the Hub verifies every Worker against `ca.pem`, and so can clients
(`curl --cacert ca.pem`). Each service's own certificate and key go to the TLS directory,
named after its first name (`SCANHUB_TLS_NAMES`, default: the host name), and carry every
name as a subject alternative name (plus `localhost` and 127.0.0.1 for probes).

`python -m common.tls DIR [NAME ...]` makes the CA (and a certificate for the names) ahead of
time, e.g. to put `ca.pem`/`ca.key` in a Kubernetes Secret.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
import socket
import ssl
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CERTIFICATE_DAYS = 825  # the longest validity clients accept for a server certificate
PROBE_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One process at a time makes certificates in `directory` (services start together)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_private(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    temporary.replace(path)


def key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ensure_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA in `ca_dir`, made now if it has none."""
    ca_path, key_path = ca_dir / "ca.pem", ca_dir / "ca.key"
    if not (ca_path.exists() and key_path.exists()):  # a CA given read-only needs no lock
        make_ca(ca_dir, ca_path, key_path)
    certificate = x509.load_pem_x509_certificate(ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not the EC key scanhub makes")
    return certificate, ca_key


def make_ca(ca_dir: Path, ca_path: Path, key_path: Path) -> None:
    with locked(ca_dir):
        if not ca_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scanhub local CA")])
            now = datetime.datetime.now(datetime.UTC)
            certificate = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
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
            write_private(key_path, key_bytes(key))
            ca_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def alternative_names(names: Sequence[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in dict.fromkeys([*names, *PROBE_NAMES]):
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def ensure_certificate(tls_dir: Path, names: Sequence[str], ca_dir: Path | None = None) -> TlsFiles:
    """This service's certificate for `names`, issued by the shared CA; reused while it is
    valid for at least 30 more days and names the same hosts."""
    ca_dir = ca_dir or tls_dir
    ca_certificate, ca_key = ensure_ca(ca_dir)
    stem = (names[0] if names else socket.gethostname()).replace("/", "_")
    files = TlsFiles(ca_dir / "ca.pem", tls_dir / f"{stem}.pem", tls_dir / f"{stem}.key")
    wanted = alternative_names(names)
    with locked(tls_dir):
        if files.certificate.exists() and files.key.exists():
            current = x509.load_pem_x509_certificate(files.certificate.read_bytes())
            remaining = current.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
            present = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if remaining > datetime.timedelta(days=30) and set(present) == set(wanted):
                return files
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
            .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_private(files.key, key_bytes(key))
        files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    return context


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifies servers against `ca_file` (scanhub's CA), or the system's CAs when None."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m common.tls DIR [NAME ...]", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    if argv[1:]:
        files = ensure_certificate(directory, argv[1:])
        print(f"CA {files.ca}; certificate {files.certificate}; key {files.key}")
    else:
        ensure_ca(directory)
        print(f"CA {directory / 'ca.pem'} (key {directory / 'ca.key'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
