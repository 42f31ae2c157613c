"""Outbound URL safety for platform webhooks: keep deliveries away from internal addresses (SSRF).

``check_url`` vets a URL before it is stored and again before each delivery: https only, no
credentials, a sane port, and every address the host resolves to must be public. A name that
resolves to one public and one private address is refused; so are literal IPs in any of the
forbidden ranges, IPv4-mapped/embedded IPv6 forms included, and the cloud metadata endpoints.

The check does not stop a DNS answer from changing between the check and the connection; a
sender that wants that guarantee connects to one of the addresses ``safe_addresses`` returned.
``allow_private=True`` (plain http, private and loopback addresses) is for the local dev stack
only; the metadata endpoints stay refused even then.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64 well-known prefixes).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Without allow_private, only the web's ports and unprivileged ones: no 22, 25, 53, 110, ...
_LOW_PORTS_ALLOWED = frozenset({80, 443})


class UnsafeUrl(ValueError):
    """A webhook URL we refuse to deliver to; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why ``address`` must not be delivered to, or None when it may be."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = forbidden_reason(inner, allow_private=allow_private)
            return None if reason is None else f"{address} embeds {reason}"
    if address.is_multicast:
        return f"{address} is multicast"
    if address.is_unspecified:
        return f"{address} is unspecified"
    if allow_private:
        return None
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
    ):
        if flag:
            return f"{address} is {label}"
    if not address.is_global:  # shared address space (100.64/10) and other special ranges
        return f"{address} is not a public address"
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # Forms like 127.1, 0x7f.0.0.1 or 2130706433 that resolvers accept as IPv4 literals.
    if host.replace(".", "").isalnum() and not host.endswith("."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def safe_addresses(
    url: str, *, allow_private: bool = False, resolve: Resolver = socket.getaddrinfo
) -> list[IPAddress]:
    """Vet ``url`` like ``check_url`` and return the addresses its host resolved to."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise UnsafeUrl("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl(f"malformed URL: {error}") from error
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed_schemes:
        raise UnsafeUrl(f"scheme must be {' or '.join(allowed_schemes)}, not {scheme or 'none'}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("URL must not contain credentials")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    elif port == 0:
        raise UnsafeUrl("port 0 is not a valid port")
    elif not allow_private and port < 1024 and port not in _LOW_PORTS_ALLOWED:
        raise UnsafeUrl(f"port {port} is not allowed")

    literal = _literal_address(host)
    if literal is not None:
        reason = forbidden_reason(literal, allow_private=allow_private)
        if reason is not None:
            raise UnsafeUrl(reason)
        return [literal]

    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnsafeUrl(f"cannot resolve {host}: {error}") from error
    addresses: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0])
        try:
            address = ipaddress.ip_address(raw)
        except ValueError as error:
            raise UnsafeUrl(f"{host} resolved to an unparsable address {raw!r}") from error
        reason = forbidden_reason(address, allow_private=allow_private)
        if reason is not None:
            raise UnsafeUrl(f"{host} resolves to {reason}")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"{host} resolves to no address")
    return addresses


def check_url(
    url: str, *, allow_private: bool = False, resolve: Resolver = socket.getaddrinfo
) -> None:
    """Raise ``UnsafeUrl`` unless ``url`` is fit to receive webhooks."""
    safe_addresses(url, allow_private=allow_private, resolve=resolve)
