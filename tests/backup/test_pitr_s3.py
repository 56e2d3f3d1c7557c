"""Point-in-time recovery into an S3 repository over TLS: the real local stack archives WAL and takes its
backups through pgBackRest into a bucket on moto's S3 server (served here over HTTPS with a certificate
of our own, since pgBackRest 2.45 speaks S3 only over TLS), and the deep verify's drill restores from it.

One stack for the module (like test_pitr_local.py, whose Stack it reuses), ~1-2 minutes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pitr_local import MakeJobs, Stack, _archive_current_segment, _job_ids, running_stack  # same dir

from schedgen_ops.runtime.dataservices import free_port, service_tempdir

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest is not installed"),
]
BUCKET = "schedgen-pitr-test"
KEY, SECRET = "pitr-test-key", "pitr-test-secret-0123456789"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost (its own CA) and its key; the certificate is readable by Postgres' user,
    which runs archive-push."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "s3-ca.pem", directory / "s3-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.chmod(0o644)
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_s3() -> Iterator[tuple[str, Path]]:
    """(https endpoint, CA file) of moto's S3 server behind Caddy's TLS on 127.0.0.1, bucket created.

    Caddy, not Python's ssl module, terminates TLS: pgBackRest (OpenSSL 3) refuses a peer that closes
    without close_notify, which werkzeug's server does after every response."""
    import boto3
    from moto.server import ThreadedMotoServer

    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    root = service_tempdir("schedgen-s3tls-")
    ca, key = _self_signed(root)
    moto_port, port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    caddyfile = root / "Caddyfile"
    caddyfile.write_text(
        "{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n}\n"
        f"https://localhost:{port} {{\n\tbind 127.0.0.1\n\ttls {ca} {key}\n"
        f"\treverse_proxy 127.0.0.1:{moto_port}\n}}\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root), "XDG_DATA_HOME": str(root / "data")}
    proxy = subprocess.Popen(
        [caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"https://localhost:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            verify=str(ca),
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # Caddy still starting
                if time.monotonic() > deadline or proxy.poll() is not None:
                    raise
                time.sleep(0.2)
        yield endpoint, ca
    finally:
        proxy.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proxy.wait(timeout=15)
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(tls_s3: tuple[str, Path]) -> Iterator[Stack]:
    endpoint, ca = tls_s3
    s3_repo = {
        "SCHEDGEN_BACKUP__PITR__REPO": "s3",
        "SCHEDGEN_BACKUP__PITR__S3_BUCKET": BUCKET,
        "SCHEDGEN_S3_ENDPOINT_URL": endpoint,
        "SCHEDGEN_S3_CA_FILE": str(ca),
        "SCHEDGEN_S3_ACCESS_KEY": KEY,
        "SCHEDGEN_S3_SECRET_KEY": SECRET,
    }
    with running_stack("schedgen-pitr-s3-", s3_repo) as s:
        yield s


def _objects(endpoint: str, ca: Path) -> list[str]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=str(ca),
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def test_up_archives_and_backs_up_into_the_bucket_and_the_drill_restores_from_it(
    stack: Stack, tls_s3: tuple[str, Path], make_jobs: MakeJobs
) -> None:
    endpoint, ca = tls_s3
    listing = json.loads(stack.ok("backup", "list", "--json"))
    assert [b["type"] for b in listing["pitr"]["backups"]] == ["full"], listing["pitr"]
    conf = (stack.project / ".schedgen" / "pgbackrest" / "pgbackrest.conf").read_text()
    assert "repo1-type=s3" in conf and f"repo1-storage-ca-file={ca}" in conf
    make_jobs(stack.app_url, 4, completed=2)
    _archive_current_segment(stack)
    keys = _objects(endpoint, ca)
    assert any("/archive/" in k for k in keys) and any("/backup/" in k for k in keys), keys[:10]
    assert not list((stack.project / ".schedgen" / "pgbackrest").glob("repo/*")), "a local repo was written"
    created = json.loads(stack.ok("backup", "--json"))  # a pg_dump set, plus a pgBackRest backup into S3
    assert created["pitr"]["backup"]["type"] in ("full", "diff")
    verified = json.loads(stack.ok("backup", "verify", "--deep", "--json"))
    drill = verified["pitr"]["drill"]
    assert drill["ok"], drill
    jobs = [n for table, n in drill["recovered_rows"].items() if table.endswith(".jobs")]
    assert jobs == [len(_job_ids(stack.app_url))]
