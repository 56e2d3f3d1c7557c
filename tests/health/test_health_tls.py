"""TLS expiry against a real TLS server with a certificate the test issues (trusted via SSL_CERT_FILE)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from schedgen_ops.ops.health import Endpoints, HealthThresholds, Status, run_health


def _issue(directory: Path, days_left: float) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days_left))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def _tls_server(cert: Path, key: Path) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(2)
                with contextlib.suppress(OSError):
                    tls.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=3)
        listener.close()


@pytest.mark.parametrize(
    ("days_left", "expected"), [(90, Status.OK), (10, Status.WARN), (3, Status.CRITICAL)]
)
def test_certificate_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, days_left: float, expected: Status
) -> None:
    cert, key = _issue(tmp_path, days_left)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with _tls_server(cert, key) as port:
        endpoints = Endpoints(domain=f"localhost:{port}")
        report = run_health(endpoints, HealthThresholds(), only=["tls"])
    [check] = report.checks
    assert check.id == "tls.expiry"
    assert check.status is expected, check.measured
    assert abs(float(check.value or 0) - days_left) < 1
    assert (check.hint is None) == (expected is Status.OK)


def test_untrusted_certificate_is_critical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _issue(tmp_path, 90)
    (tmp_path / "other").mkdir()
    other, _ = _issue(tmp_path / "other", 90)
    monkeypatch.setenv("SSL_CERT_FILE", str(other))  # trusts a different certificate
    with _tls_server(cert, key) as port:
        report = run_health(Endpoints(domain=f"localhost:{port}"), HealthThresholds(), only=["tls"])
    [check] = report.checks
    assert check.status is Status.CRITICAL and "ACME" in (check.hint or "")


def test_no_domain_no_tls_check() -> None:
    assert run_health(Endpoints(), HealthThresholds(), only=["tls"]).checks == []
