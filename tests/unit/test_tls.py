"""Certificates made at first start: one CA per shared directory, a certificate per service."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from common import tls

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def names_of(path: Path) -> set[str]:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in extension}


def test_a_service_certificate_names_its_hosts_and_the_probe_addresses(tmp_path):
    files = tls.ensure_certificate(tmp_path, ["worker1-api"])
    assert names_of(files.certificate) == {"worker1-api", "localhost", "127.0.0.1"}
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    server = tls.server_context(files.certificate, files.key)
    # A client trusting ca.pem accepts the certificate under each of its names...
    for name in ("worker1-api", "localhost", "127.0.0.1"):
        handshake(tls.client_context(files.ca), server, name)
    # ...and refuses it under another name, or when it trusts another CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls.client_context(files.ca), server, "elsewhere")
    other = tls.ensure_certificate(tmp_path / "other", ["x"])
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls.client_context(other.ca), server, "worker1-api")


def handshake(client_context: ssl.SSLContext, server_context: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake in memory, bytes pumped between the two ends until both are done."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server, server_hostname=hostname)
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def test_services_sharing_a_directory_share_one_ca_and_reuse_their_certificates(tmp_path):
    first = tls.ensure_certificate(tmp_path, ["hub"])
    second = tls.ensure_certificate(tmp_path, ["worker1-api"])
    assert first.ca == second.ca
    before = first.certificate.read_bytes()
    assert tls.ensure_certificate(tmp_path, ["hub"]).certificate.read_bytes() == before
    # Other names: a new certificate.
    tls.ensure_certificate(tmp_path, ["hub", "hub.example"])
    assert first.certificate.read_bytes() != before


def test_processes_starting_together_make_one_ca(tmp_path):
    code = (
        "import sys, pathlib; from common import tls; "
        "tls.ensure_certificate(pathlib.Path(sys.argv[1]), [sys.argv[2]])"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"service{number}"], cwd=ROOT)
        for number in range(4)
    ]
    assert [process.wait(60) for process in processes] == [0, 0, 0, 0]
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    for number in range(4):
        issued = x509.load_pem_x509_certificate((tmp_path / f"service{number}.pem").read_bytes())
        assert issued.issuer == ca.subject
        issued.verify_directly_issued_by(ca)  # raises when another CA signed it
