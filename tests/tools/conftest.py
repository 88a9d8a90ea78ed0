"""A real HTTP(S) server on 127.0.0.1 for the http client tests. The client reaches it only with
`allow_loopback=True`, which nothing outside tests passes."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import shutil
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.stubs.mcp_demo import demo_mcp_over_http


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        route = getattr(self, "route_" + url.path.strip("/").replace("-", "_"), None)
        if route is None:
            self._send(404, b"not found")
            return
        # The client hanging up early is what several tests want.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            route(query)

    def route_echo(self, query: dict) -> None:
        self._send(200, f"host={self.headers['Host']}".encode())

    def route_redirect(self, query: dict) -> None:
        self.send_response(302)
        self.send_header("Location", query["to"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_loop(self, query: dict) -> None:
        self.route_redirect({"to": "/loop"})

    def route_big(self, query: dict) -> None:
        size = int(query["n"])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        for _ in range(0, size, 8192):
            self.wfile.write(b"a" * min(8192, size))
            size -= 8192

    def route_slow(self, query: dict) -> None:
        time.sleep(float(query.get("seconds", "5")))
        self._send(200, b"late")

    def route_drip(self, query: dict) -> None:
        # Headers at once, then a byte every 50 ms: no single read ever waits long.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "200")
        self.end_headers()
        for _ in range(200):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)

    def route_gzip(self, query: dict) -> None:
        self._send(200, gzip.compress(b"hello" * 100), headers={"Content-Encoding": "gzip"})

    def route_latin1(self, query: dict) -> None:
        self._send(200, "café".encode("latin-1"), content_type="text/plain; charset=iso-8859-1")

    def route_image(self, query: dict) -> None:
        self._send(200, b"\x89PNG\r\n\x1a\n" + bytes(100), content_type="image/png")

    def _send(self, status: int, body: bytes, *, content_type: str = "text/plain", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # slow handlers must not hold up the test run's teardown

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up early are expected here


@dataclass
class LocalServer:
    port: int
    scheme: str = "http"
    sni_names: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _serve(server: _Server) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def http_server() -> Iterator[LocalServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    for _ in _serve(server):
        yield LocalServer(port=server.server_address[1])


@dataclass
class LocalCA:
    cert_path: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory) -> tuple[LocalCA, Path, Path]:
    """A throwaway CA and a server certificate it signed for the name `safe.test` only."""
    directory = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentplatform test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "safe.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("safe.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return LocalCA(cert_path=ca_path), cert_path, key_path


@pytest.fixture(scope="session")
def https_server(tls_material) -> Iterator[LocalServer]:
    """The same routes over TLS, serving the `safe.test` certificate and recording the SNI names
    clients send."""
    _, cert_path, key_path = tls_material
    local = LocalServer(port=0, scheme="https")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda _sock, name, _ctx: local.sni_names.append(name)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    local.port = server.server_address[1]
    for _ in _serve(server):
        yield local


# --- workspaces, skills and MCP servers ------------------------------------------------------------

DEMO_MCP_SERVER = Path(__file__).resolve().parent / "mcp_servers" / "demo_server.py"


@pytest.fixture(autouse=True)
def _workspace_root(settings, tmp_path_factory):
    """Every test here gets its own workspace root: nothing is written under var/."""
    settings.WORKSPACE_ROOT = tmp_path_factory.mktemp("workspaces")
    return settings.WORKSPACE_ROOT


@pytest.fixture
def skills_dir(settings, tmp_path) -> Path:
    """A catalog folder of the tests' own, with copies of the shipped skills."""
    directory = tmp_path / "skills"
    shutil.copytree(Path(settings.BASE_DIR) / "skills", directory)
    settings.SKILLS_DIR = directory
    return directory


@pytest.fixture
def mcp_settings(settings, tmp_path_factory):
    """Generous timeouts (the demo server starts a Python interpreter), and the servers' stderr
    logs in a temporary VAR_DIR (only the MCP client reads it at run time)."""
    settings.VAR_DIR = tmp_path_factory.mktemp("var")
    settings.MCP_CONNECT_TIMEOUT_SECONDS = 30.0
    settings.MCP_CALL_TIMEOUT_SECONDS = 20.0


@pytest.fixture
def demo_definition(db):
    """The operator's definition of the demo server over stdio, granted to no tenant yet."""
    from apps.tools.models import PluginDefinition

    return PluginDefinition.objects.create(
        name="demo", description="The tests' demo server", command=sys.executable, args=[str(DEMO_MCP_SERVER)]
    )


@pytest.fixture
def demo_enabled(tenant, demo_definition, mcp_settings):
    """`demo` granted to and enabled by `tenant` (its tools discovered on enable)."""
    from apps.tenancy.principal import Actor
    from apps.tools import services

    demo_definition.granted_tenants.add(tenant)
    return services.plugin_toggle(tenant=tenant, actor=Actor.system("test"), name="demo", enabled=True)


@pytest.fixture(autouse=True)
def _close_mcp_connections():
    """No MCP server process outlives the test that started it."""
    yield
    from apps.tools.mcp_client import manager

    manager.close_all()


@pytest.fixture(scope="session")
def demo_http_server() -> Iterator[str]:
    """The demo MCP server over streamable HTTP on loopback; yields its URL."""
    with demo_mcp_over_http() as url:
        yield url
