"""Unit tests of webhook URL vetting (SSRF guard), with a fake resolver: no network."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import pytest

from services.notify.webhooks.safety import UnsafeUrl, check_url, forbidden_reason, safe_addresses

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"

DNS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC_V4],
    "dual.example.com": [PUBLIC_V4, PUBLIC_V6],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example.com": ["10.1.2.3"],
    "mixed.example.com": [PUBLIC_V4, "192.168.1.10"],
    "mixed6.example.com": [PUBLIC_V6, "fd12::1"],
    "metadata.example.com": ["169.254.169.254"],
    "cgnat.example.com": ["100.64.0.1"],
    "dev.local": ["172.18.0.5"],
}


def fake_resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> Sequence[tuple[Any, ...]]:
    if host not in DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    results: list[tuple[Any, ...]] = []
    for address in DNS[host]:
        if ":" in address:
            results.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
        else:
            results.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
    return results


def no_resolve(host: str, *args: Any, **kwargs: Any) -> Sequence[tuple[Any, ...]]:
    raise AssertionError(f"literal {host} must not be resolved")


ACCEPTED = [
    "https://hooks.example.com/refunds",
    "https://hooks.example.com:8443/refunds?x=1",
    "https://dual.example.com/",
    f"https://{PUBLIC_V4}/hook",
    f"https://[{PUBLIC_V6}]/hook",
    "HTTPS://Hooks.Example.com/x",
]

REFUSED = [
    ("http://hooks.example.com/refunds", "scheme"),
    ("ftp://hooks.example.com/", "scheme"),
    ("hooks.example.com/refunds", "scheme"),
    ("https://user:pw@hooks.example.com/", "credentials"),
    ("https://user@hooks.example.com/", "credentials"),
    ("https:///path-only", "no host"),
    ("https://hooks.example.com:0/", "port"),
    ("https://hooks.example.com:22/", "port"),
    ("https://hooks.example.com:99999/", "malformed"),
    ("https://hooks.example.com:abc/", "malformed"),
    ("https://hooks.example.com/a b", "whitespace"),
    ("https://hooks.example.com/\r\nX: y", "whitespace"),
    ("https://localhost/", "loopback"),
    ("https://127.0.0.1/", "loopback"),
    ("https://127.1/", "loopback"),
    ("https://2130706433/", "loopback"),
    ("https://0x7f.0.0.1/", "loopback"),
    ("https://10.0.0.1/", "private"),
    ("https://10.255.255.255/", "private"),
    ("https://172.16.0.1/", "private"),
    ("https://172.31.255.254/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://169.254.1.1/", "link-local"),
    ("https://100.100.100.200/", "metadata"),
    ("https://100.64.0.1/", "public"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://224.0.0.1/", "multicast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://255.255.255.255/", "reserved"),
    ("https://[::1]/", "loopback"),
    ("https://[::]/", "unspecified"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fe80::1%25eth0]/", "link-local"),
    ("https://[fc00::1]/", "private"),
    ("https://[fd00:ec2::254]/", "metadata"),
    ("https://[ff02::1]/", "multicast"),
    ("https://[::ffff:127.0.0.1]/", "loopback"),
    ("https://[::ffff:10.0.0.1]/", "private"),
    ("https://[::ffff:169.254.169.254]/", "metadata"),
    ("https://[2002:7f00:1::]/", "loopback"),  # 6to4 around 127.0.0.1
    ("https://[64:ff9b::a9fe:a9fe]/", "metadata"),  # NAT64 around 169.254.169.254
    ("https://internal.example.com/", "private"),
    ("https://mixed.example.com/", "private"),
    ("https://mixed6.example.com/", "private"),
    ("https://metadata.example.com/", "metadata"),
    ("https://cgnat.example.com/", "public"),
    ("https://nowhere.example.com/", "cannot resolve"),
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_https_is_accepted(url: str) -> None:
    check_url(url, resolve=fake_resolve)


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_unsafe_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl) as caught:
        check_url(url, resolve=fake_resolve)
    assert why in caught.value.reason


def test_literals_are_not_resolved() -> None:
    check_url(f"https://{PUBLIC_V4}/", resolve=no_resolve)
    with pytest.raises(UnsafeUrl):
        check_url("https://127.0.0.1/", resolve=no_resolve)


def test_safe_addresses_returns_the_vetted_addresses() -> None:
    assert safe_addresses("https://dual.example.com/", resolve=fake_resolve) == [
        ipaddress.ip_address(PUBLIC_V4),
        ipaddress.ip_address(PUBLIC_V6),
    ]


def test_resolver_returning_nothing_is_refused() -> None:
    with pytest.raises(UnsafeUrl, match="no address"):
        check_url("https://hooks.example.com/", resolve=lambda *a, **k: [])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://dev.local:9000/hook",
        "https://[::1]:8443/hook",
        "http://10.0.0.7/hook",
    ],
)
def test_allow_private_permits_the_dev_stack(url: str) -> None:
    check_url(url, allow_private=True, resolve=fake_resolve)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://metadata.example.com/",
        "http://user:pw@127.0.0.1:8080/",
        "ftp://127.0.0.1/",
        "http://0.0.0.0:8080/",
    ],
)
def test_allow_private_still_refuses_metadata_credentials_and_nonsense(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=True, resolve=fake_resolve)


def test_forbidden_reason_direct() -> None:
    assert forbidden_reason(ipaddress.ip_address(PUBLIC_V4)) is None
    assert forbidden_reason(ipaddress.ip_address(PUBLIC_V6)) is None
    assert forbidden_reason(ipaddress.ip_address("::ffff:8.8.8.8")) is None
    assert forbidden_reason(ipaddress.ip_address("192.0.2.1")) is not None  # documentation
    assert forbidden_reason(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    assert forbidden_reason(ipaddress.ip_address("169.254.169.254"), allow_private=True)


def test_unsafe_url_is_a_value_error() -> None:
    assert issubclass(UnsafeUrl, ValueError)
    assert UnsafeUrl("x").reason == "x"
