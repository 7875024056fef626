"""Completion webhooks: where they may go, the body, its signature, and checking one.

When the last image of a batch reaches a final state, blurq POSTs ``payload(batch)`` (JSON) to the
batch's ``webhook_url`` with three headers::

    X-Blurq-Timestamp: <unix seconds>
    X-Blurq-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>\\n<url>\\n" + raw body)>
    X-Blurq-Delivery: <the notice's id, also the body's delivery_id>

Delivery is at least once: an attempt whose answer was lost is tried again, and the maintenance
sweep (``infra.sweeper``) sends a due notice again when its sender died. Every attempt at one
batch's notice carries the same delivery id (``delivery_id``): receivers drop repeats by it.

``<url>`` is the webhook URL exactly as it was submitted, so a notice captured at one receiver
fails verification at any other; the timestamp is signed too, so an old notice cannot be replayed
with a fresh one. ``secret`` is the tenant's own: ``secret_for(BLURQ_WEBHOOK_SECRET, tenant)``, an
HMAC of the tenant's name under the deployment's secret, so the tenants file holds no secrets and
one tenant's secret says nothing about another's. Receivers check all of it with ``verify`` (or the
same few lines in their language) on the raw body bytes, passing the URL they registered.

Webhooks go only to public addresses (SSRF: a notice must never reach Redis, Flower, a cloud
metadata service or anything else on the deployment's network). ``vet`` resolves the host once and
refuses the URL unless every address is globally routable, whatever the spelling (``127.1``,
``2130706433``, ``[::ffff:127.0.0.1]``, names resolving to private addresses): the check is on the
addresses, not the text. The API checks at submit (``check_url``) and the worker again at send,
where it connects to the address it vetted (``workers.webhooks``), so DNS cannot rebind in between.
``BLURQ_WEBHOOK_ALLOW_PRIVATE=true`` lets loopback and private addresses through: for local
development and tests only, never in production.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from infra.errors import InvalidJob
from infra.settings import get_settings
from infra.status import BatchStatus
from infra.tenants import split

SIGNATURE_HEADER = "X-Blurq-Signature"
TIMESTAMP_HEADER = "X-Blurq-Timestamp"
DELIVERY_HEADER = "X-Blurq-Delivery"
TOLERANCE_S = 300
"""How old (or how far in the future) a timestamp ``verify`` accepts, in seconds."""
MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT_S = 3.0
"""Longest wait for the host's addresses at submit; a slower name is refused."""
REFUSED = "webhook URL refused: its host must resolve to public (globally routable) addresses only"
"""The one answer for a host that is private, unresolvable or unreachable by policy: no oracle."""
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(net) for net in ("64:ff9b:1::/48", "192.88.99.0/24", "100.64.0.0/10")
)
"""Ranges ``is_global`` lets through on some Pythons: local-use NAT64, 6to4 relays, carrier NAT."""
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")
"""Runs getaddrinfo, which has no timeout of its own; a hung lookup holds one thread, not us."""


@dataclass(frozen=True)
class Target:
    """A vetted destination: the URL's parts and the one address every connection goes to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _parts(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an absolute http(s) URL; InvalidJob otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(url) > MAX_URL_LENGTH
        or not url.isascii()
        or any(char <= " " or char == "\x7f" for char in url)
    ):
        raise InvalidJob(f"webhook URL must be an absolute http(s) URL, got {url[:100]!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidJob("webhook URL must not carry credentials (user:password@)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default, path


def resolve(host: str, port: int, *, timeout: float) -> list[str]:
    """Every address host resolves to; socket.gaierror or TimeoutError when it does not."""
    lookup = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        found = lookup.result(timeout=timeout)
    except TimeoutError as error:
        raise TimeoutError(f"resolving the webhook host took over {timeout:g} s") from error
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if int(address) < 2**32 or address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(text: str) -> bool:
    """True when the address is globally routable unicast, and so is any IPv4 it embeds."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(str(embedded)):
            return False
    return (
        address.is_global
        and not (address.is_multicast or address.is_reserved or address.is_unspecified)
        and not (address.is_private or address.is_loopback or address.is_link_local)
        and not any(address in net for net in _NOT_PUBLIC if net.version == address.version)
    )


def _allowed(text: str, allow_private: bool) -> bool:
    address = ipaddress.ip_address(text)
    if allow_private:  # development only; still never a multicast or "any" address
        return not (address.is_multicast or address.is_unspecified)
    return is_public(text)


def vet(url: str, *, allow_private: bool, timeout: float = RESOLVE_TIMEOUT_S) -> Target:
    """The URL's target, resolved once; InvalidJob when refused, OSError when DNS fails for now."""
    scheme, host, port, path = _parts(url)
    try:
        addresses = resolve(host, port, timeout=timeout)
    except socket.gaierror as error:
        if error.errno == socket.EAI_AGAIN:
            raise  # a resolver outage: a later attempt may get an answer
        raise InvalidJob(REFUSED) from error
    if not addresses or not all(_allowed(address, allow_private) for address in addresses):
        raise InvalidJob(REFUSED)
    return Target(scheme, host, port, path, addresses[0])


def check_form(url: str) -> str:
    """The URL when it is an absolute http(s) URL without credentials; InvalidJob otherwise.

    The form alone, without resolving the host (``check_url`` does that): cheap enough for a
    request validator running on the event loop.
    """
    _parts(url)
    return url


def check_url(url: str, *, allow_private: bool | None = None) -> str:
    """The URL when it is http(s) and its host resolves to public addresses only; else InvalidJob.

    ``allow_private`` defaults to ``BLURQ_WEBHOOK_ALLOW_PRIVATE``. A host that does not resolve now
    is refused with the same answer as a private one: the caller learns of a typo at once, and
    nothing about the deployment's own DNS. The worker checks again when it sends.
    """
    if allow_private is None:
        allow_private = get_settings().webhook_allow_private
    try:
        vet(url, allow_private=allow_private)
    except OSError as error:  # a slow or failing resolver: refused, with the one answer
        raise InvalidJob(REFUSED) from error
    return url


def delivery_id(batch: BatchStatus) -> str:
    """The id of a batch's end notice: the same for every attempt at it, another for any other."""
    ended = f"{batch.batch_id}\n{batch.finished_at!r}".encode()
    return hashlib.sha256(ended).hexdigest()[:32]


def payload(batch: BatchStatus) -> bytes:
    """The JSON body announcing that a batch has finished (its id as the tenant knows it)."""
    body = {
        "delivery_id": delivery_id(batch),
        "batch_id": split(batch.batch_id)[1],
        "total": batch.total,
        "done": batch.done,
        "failed": batch.failed,
        "cancelled": batch.cancelled,
        "finished_at": batch.finished_at,
        "output": batch.output,
    }
    if batch.error:  # it failed as a whole (its inputs could not all be found)
        body["error"] = batch.error
    return json.dumps(body, separators=(",", ":")).encode()


def secret_for(master: str, tenant: str) -> str:
    """A tenant's webhook secret: hex HMAC-SHA256 of ``blurq-webhook:<tenant>`` under master."""
    return hmac.new(master.encode(), f"blurq-webhook:{tenant}".encode(), hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: str, url: str, body: bytes) -> str:
    """``sha256=<hex>`` of the HMAC-SHA256 of ``<timestamp>\\n<url>\\n<body>`` under secret."""
    signed = f"{timestamp}\n{url}\n".encode() + body  # no newline in either: unambiguous
    return f"sha256={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def signed_headers(
    secret: str, url: str, body: bytes, *, delivery: str = "", now: float | None = None
) -> dict[str, str]:
    """The headers of one delivery of body to url: content type, timestamp, signature and the
    delivery id (when given)."""
    timestamp = str(int(time.time() if now is None else now))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, url, body),
    }
    if delivery:
        headers[DELIVERY_HEADER] = delivery
    return headers


def verify(
    secret: str,
    url: str,
    body: bytes,
    timestamp: str,
    signature_header: str,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_S,
) -> bool:
    """True when the signature matches url, body and timestamp, and the timestamp is recent."""
    if not secret or not timestamp.isdigit() or "\n" in url:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, url, body), signature_header)
