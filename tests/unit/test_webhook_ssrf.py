"""Webhook targets: private hosts refused in every spelling, the pinned connection, no redirects."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra.errors import InvalidJob
from infra.settings import Settings, get_settings
from infra.webhooks import REFUSED, Target, check_url, is_public, vet
from workers import webhooks as sender

PUBLIC = "93.184.215.14"
Resolver = Callable[..., list[Any]]


def answers(*addresses: str) -> Resolver:
    """A getaddrinfo that resolves every name to addresses."""

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        family = {4: socket.AF_INET, 6: socket.AF_INET6}
        return [
            (family[6 if ":" in a else 4], socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    return resolve


class Listener:
    """An HTTP server on loopback recording every request; answers ``reply`` (code, headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.reply: tuple[int, dict[str, str]] = (204, {})
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                listener.requests.append((self.path, dict(self.headers), body))
                self.send_response(listener.reply[0])
                for name, value in listener.reply[1].items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    threading.Thread(target=running.server.serve_forever, daemon=True).start()
    yield running
    running.server.shutdown()
    running.server.server_close()


SPELLINGS = [
    "http://127.0.0.1/",
    "http://127.0.0.2/",
    "http://2130706433/",  # decimal
    "http://0x7f000001/",  # hexadecimal
    "http://127.1/",  # short form
    "http://0177.0.0.1/",  # octal
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",
    "http://[::1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible IPv6
    "http://[64:ff9b::7f00:1]/",  # NAT64 of loopback
    "http://[2002:7f00:1::]/",  # 6to4 of loopback
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://0.0.0.0:6379/",
    "http://[::]/",
    "http://localhost:5555/api/worker/queue/cancel-consumer/w",  # real resolution
    "https://LOCALHOST/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://224.0.0.1/",  # multicast
    "http://255.255.255.255/",
    "http://240.0.0.1/",  # reserved
]


@pytest.mark.parametrize("url", SPELLINGS)
def test_every_spelling_of_a_private_address_is_refused_at_submit(url: str) -> None:
    with pytest.raises(InvalidJob) as refused:
        check_url(url, allow_private=False)
    assert str(refused.value) == REFUSED


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("metadata.google.internal", ["169.254.169.254"]),
        ("intranet.shop.test", ["10.1.2.3"]),
        ("half.shop.test", [PUBLIC, "127.0.0.1"]),  # every address must be public
        ("six.shop.test", ["2606:4700::1111", "::1"]),
        ("mapped.shop.test", ["::ffff:169.254.169.254"]),
    ],
)
def test_names_resolving_to_private_addresses_are_refused(
    name: str, addresses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", answers(*addresses))
    with pytest.raises(InvalidJob, match="public"):
        check_url(f"https://{name}/hook", allow_private=False)


def test_a_name_that_does_not_resolve_gets_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    def nowhere(*args: object, **kwargs: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    with pytest.raises(InvalidJob) as refused:
        check_url("https://nowhere.invalid/", allow_private=False)
    assert str(refused.value) == REFUSED


def test_public_addresses_pass() -> None:
    for address in (PUBLIC, "8.8.8.8", "2606:4700::1111"):
        assert is_public(address), address
    assert check_url(f"http://{PUBLIC}:8080/x", allow_private=False) == f"http://{PUBLIC}:8080/x"


def test_the_development_switch_lets_loopback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:8000/hook"
    assert check_url(url, allow_private=True) == url
    for value, allowed in (("false", False), ("true", True)):
        monkeypatch.setenv("BLURQ_WEBHOOK_ALLOW_PRIVATE", value)
        get_settings.cache_clear()
        try:
            if allowed:
                assert check_url(url) == url
            else:
                with pytest.raises(InvalidJob, match="public"):
                    check_url(url)
        finally:
            get_settings.cache_clear()
    monkeypatch.delenv("BLURQ_WEBHOOK_ALLOW_PRIVATE")
    assert Settings().webhook_allow_private is False  # off unless asked for
    with pytest.raises(InvalidJob):  # never a multicast or "any" address, even then
        check_url("http://0.0.0.0:8000/", allow_private=True)


def attempt(url: str, *, allow_private: bool = False) -> tuple[str, bool]:
    settings = Settings(webhook_allow_private=allow_private, webhook_timeout=5)
    return sender._attempt(url, b'{"batch_id":"b"}', "secret", settings)


def test_the_pinned_connection_keeps_host_header_and_path(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", answers("127.0.0.1"))
    url = f"http://hooks.shop.test:{listener.port}/hooks/blurq?shop=a"
    assert attempt(url, allow_private=True) == ("", False)
    [(path, headers, body)] = listener.requests
    assert path == "/hooks/blurq?shop=a" and headers["Host"] == f"hooks.shop.test:{listener.port}"
    assert body == b'{"batch_id":"b"}' and headers["Content-Type"] == "application/json"


def test_send_time_refusal_is_the_same_for_open_and_closed_ports(listener: Listener) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    open_answer = attempt(f"http://127.0.0.1:{listener.port}/")
    closed_answer = attempt(f"http://127.0.0.1:{closed_port}/")
    assert open_answer == closed_answer == (REFUSED, False)  # final, and no port scanner
    assert attempt(f"http://2130706433:{listener.port}/") == (REFUSED, False)
    assert listener.requests == []


def test_dns_rebinding_gets_the_address_that_was_vetted(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        lookups.append(host)  # public first, then the attacker's loopback
        return answers(PUBLIC if len(lookups) == 1 else "127.0.0.1")(host, port)

    connected: list[tuple[str, int]] = []

    def connect(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        connected.append(address)
        raise ConnectionRefusedError("this test reaches no public host")

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(sender.socket, "create_connection", connect)
    error, retry = attempt(f"http://rebind.test:{listener.port}/")
    assert lookups == ["rebind.test"] and connected == [(PUBLIC, listener.port)]
    assert error.startswith("ConnectionRefusedError") and retry
    assert listener.requests == []


def test_a_redirect_is_a_final_answer_never_followed(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", answers("127.0.0.1"))
    listener.reply = (302, {"Location": f"http://127.0.0.1:{listener.port}/elsewhere"})
    assert attempt(f"http://hooks.test:{listener.port}/hook", allow_private=True) == (
        "HTTP 302",
        False,
    )
    assert [path for path, _, _ in listener.requests] == ["/hook"]


@pytest.fixture
def tls_listener(listener: Listener, tmp_path: Path) -> Iterator[tuple[Listener, Path, list[str]]]:
    """The listener behind TLS with a self-signed certificate for hooks.test; records SNI."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.test"),
            *("-addext", "subjectAltName=DNS:hooks.test"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    names: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(str(name)) and None
    listener.server.socket = context.wrap_socket(listener.server.socket, server_side=True)
    yield listener, cert, names


def test_https_goes_to_the_pinned_address_with_sni_and_a_checked_certificate(
    tls_listener: tuple[Listener, Path, list[str]],
) -> None:
    listener, cert, names = tls_listener
    trusted = ssl.create_default_context(cafile=str(cert))
    target = Target("https", "hooks.test", listener.port, "/tls", "127.0.0.1")
    assert sender.deliver(target, b"{}", {}, timeout=5, context=trusted) == 204
    assert names == ["hooks.test"] and listener.requests[0][1]["Host"] == "hooks.test:" + str(
        listener.port
    )
    other = Target("https", "other.test", listener.port, "/tls", "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"other\.test"):
        sender.deliver(other, b"{}", {}, timeout=5, context=trusted)
    with pytest.raises(ssl.SSLCertVerificationError):  # the default context checks the chain
        sender.deliver(target, b"{}", {}, timeout=5)
    assert len(listener.requests) == 1


def test_vet_resolves_once_and_pins_the_first_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", answers(PUBLIC, "8.8.8.8"))
    target = vet("https://hooks.test/a?b=1#frag", allow_private=False)
    assert target == Target("https", "hooks.test", 443, "/a?b=1", PUBLIC)
