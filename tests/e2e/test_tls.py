"""https to CircleService as the OS trusts it: an untrusted certificate still means "running", and a
certificate for another host name gets its own message."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES
from tests.bridge_harness import bridge_env, emulator_running, error_of, run, with_bridge


def test_untrusted_certificate_is_running_with_a_tls_problem() -> None:
    with emulator_running(https=True) as emulator:
        env = bridge_env(emulator)
        del env["CIRCLE_CA_FILE"]  # the emulator's CA is in no trust store

        async def body(bridge: BridgeClient) -> None:
            reply = await bridge.request("circle/isServiceRunning", {})
            assert reply["running"] is True
            assert "does not trust" in reply["tlsProblem"]
            assert "CIRCLE_CA_FILE" in reply["tlsProblem"]
            err = await error_of(bridge.enum_circles())
            assert err.code == -33007
            assert "CIRCLE_CA_FILE" in err.data["invalid"]
            assert emulator.stats["tokenRequests"] == 0  # the service check came first

        run(with_bridge(env, body))


def test_ssl_cert_file_adds_a_trust_anchor() -> None:
    with emulator_running(https=True) as emulator:
        env = bridge_env(emulator)
        ca_file = env.pop("CIRCLE_CA_FILE")

        async def body(bridge: BridgeClient) -> None:
            reply = await bridge.request("circle/isServiceRunning", {})
            assert reply == {"running": True, "serviceUrl": emulator.service_url}  # no tlsProblem
            assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)

        run(with_bridge({**env, "SSL_CERT_FILE": ca_file}, body))


@pytest.fixture
def server_for_another_host(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An https server on 127.0.0.1 whose certificate (from a CA we trust) names another host."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "circle.example")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("circle.example")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(65536)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                conn.close()  # the client refused our certificate: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{port}", str(tmp_path / "ca.pem")
    stop.set()
    thread.join()
    listener.close()


def test_hostname_mismatch_has_its_own_message(server_for_another_host: tuple[str, str]) -> None:
    url, ca_file = server_for_another_host
    with emulator_running() as emulator:

        async def body(bridge: BridgeClient) -> None:
            reply = await bridge.request("circle/isServiceRunning", {})
            assert reply["running"] is True
            assert "names another host" in reply["tlsProblem"]
            err = await error_of(bridge.circle_initialize())
            assert err.code == -33007
            assert "names another host" in err.message

        run(with_bridge(bridge_env(emulator, CIRCLE_SERVICE_URL=url, CIRCLE_CA_FILE=ca_file), body))
