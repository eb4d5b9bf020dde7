"""The one guard on connections the platform opens to a server someone else named.

A merchant types an IMAP or SMTP host; later a webhook or an attachment URL. Left alone, the
platform would connect wherever that name points: its own database, Redis, the cloud's metadata
service. So every such destination must resolve only to public internet addresses and use the
service's usual port, checked when it is saved and again at every connect (a name can change
what it resolves to in between: DNS rebinding). The connection then goes to the address that
was checked, never to the name resolved a second time.

The platform operator may let more through with ``HELPDESK_EGRESS_ALLOW`` (``host:port``
entries, matched against the host as typed); tests use it for their own loopback servers.

Errors a merchant sees must not turn the platform into their port scanner: a connection that
fails is reported with a generic reason and a reference; the details go to the log.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from helpdesk.errors import EgressRefused

logger = logging.getLogger(__name__)

# The ports each kind of destination may use unless the operator allow-lists host:port.
PORTS: dict[str, frozenset[int]] = {
    "imap": frozenset({143, 993}),
    "smtp": frozenset({25, 465, 587, 2525}),
    "https": frozenset({443}),
    "http": frozenset({80}),  # plain-http webhook URLs (helpdesk.http)
}

# is_global misses some of these on older Pythons, and naming them keeps the log readable.
_REFUSED_NETWORKS: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = tuple(
    (reason, ipaddress.ip_network(network))
    for reason, network in (
        ("cloud metadata", "169.254.169.254/32"),
        ("cloud metadata", "fd00:ec2::254/128"),
        ("cloud metadata", "100.100.100.200/32"),  # Alibaba Cloud
        ("cloud metadata", "192.0.0.192/32"),  # Oracle Cloud
        ("this network", "0.0.0.0/8"),
        ("shared address space", "100.64.0.0/10"),
        ("IETF protocol assignments", "192.0.0.0/24"),
        ("documentation", "192.0.2.0/24"),
        ("benchmarking", "198.18.0.0/15"),
        ("documentation", "198.51.100.0/24"),
        ("documentation", "203.0.113.0/24"),
        ("6to4 relay anycast", "192.88.99.0/24"),
        ("broadcast", "255.255.255.255/32"),
        ("IPv4-mapped", "::ffff:0:0/96"),
        ("IPv4-translated", "::ffff:0:0:0/96"),
        ("discard-only", "100::/64"),
        ("documentation", "2001:db8::/32"),
        ("6to4 tunnel", "2002::/16"),
        ("Teredo tunnel", "2001::/32"),
        ("unique local", "fc00::/7"),
        ("site-local", "fec0::/10"),
    )
)
# NAT64 (RFC 6052): an IPv6-only host reaches IPv4 through it, so judge the IPv4 inside.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def check_destination(host: str, port: int, *, purpose: str) -> list[str]:
    """Return the IP addresses ``host`` resolves to, every one of them public, or raise
    ``EgressRefused``: when any address is not public (loopback, private, link-local, cloud
    metadata, shared, multicast, reserved...), when the name does not resolve, or when ``port``
    is not a usual port for ``purpose`` ("imap", "smtp", "https"). A ``host:port`` listed in
    ``HELPDESK_EGRESS_ALLOW`` passes whatever it resolves to."""
    if purpose not in PORTS:
        raise ValueError(f"unknown egress purpose {purpose!r}")
    name = _normalised(host)
    if not name:
        raise EgressRefused(_("No server name was given."), purpose=purpose)
    allowed = (name, int(port)) in allow_list()
    addresses = _resolve(name, port, purpose=purpose)
    if not allowed:
        refused = [(address, why) for address in addresses if (why := refusal_reason(address))]
        if refused:
            reference = new_reference()
            logger.warning(
                "egress %s: refused %s %s:%s, it resolves to %s",
                reference,
                purpose,
                name,
                port,
                ", ".join(f"{address} ({why})" for address, why in refused),
            )
            raise _not_public(name, port, purpose=purpose, reference=reference)
        if int(port) not in PORTS[purpose]:
            raise EgressRefused(
                _("Port %(port)s is not a %(service)s port: use %(ports)s.")
                % {
                    "port": port,
                    "service": purpose.upper(),
                    "ports": ", ".join(str(p) for p in sorted(PORTS[purpose])),
                },
                host=name,
                port=port,
                purpose=purpose,
                field="port",
            )
    return addresses


def connect_address(host: str, port: int, *, purpose: str) -> str:
    """Check ``host`` again, now, and return the vetted address to connect to.

    Connect to this address (keeping ``host`` for TLS's server name and certificate check),
    not to ``host``: resolving the name again could give an address nobody checked.
    """
    return check_destination(host, port, purpose=purpose)[0]


def open_connection(host: str, port: int, *, purpose: str, timeout: float | None) -> socket.socket:
    """A TCP connection to ``host`` through the guard, to the address it checked."""
    address = connect_address(host, port, purpose=purpose)
    return socket.create_connection((address, port), timeout=timeout)


def refusal_reason(address: str) -> str:
    """Why the platform must not connect to ``address``; empty when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64:
        embedded = refusal_reason(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        return f"NAT64 of {embedded}" if embedded else ""
    for reason, network in _REFUSED_NETWORKS:
        if ip.version == network.version and ip in network:
            return reason
    for reason, flagged in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not global", not ip.is_global),
    ):
        if flagged:
            return reason
    return ""


def allow_list() -> set[tuple[str, int]]:
    """The operator's ``HELPDESK_EGRESS_ALLOW`` as (host, port) pairs."""
    allowed = set()
    for entry in getattr(settings, "HELPDESK_EGRESS_ALLOW", []):
        host, separator, port = str(entry).strip().rpartition(":")
        if not separator or not host or not port.isdigit():
            raise ImproperlyConfigured(
                f"HELPDESK_EGRESS_ALLOW entry {entry!r} is not host:port (IPv6 as [::1]:993)"
            )
        allowed.add((_normalised(host), int(port)))
    return allowed


def new_reference() -> str:
    """A short code a merchant can quote and the operator can find in the logs."""
    return f"E-{secrets.token_hex(3)}"


def merchant_safe_error(exc: BaseException, *, what: str, destination: str = "") -> str:
    """What a merchant is told about a connection that failed: a generic reason and a
    reference, the same whether the port was closed, filtered or spoke another protocol (those
    differences would map the platform's network). The details are logged at WARNING."""
    reference = new_reference()
    logger.warning(
        "egress %s: could not connect to %s: %s: %s",
        reference,
        destination or what,
        type(exc).__name__,
        exc,
    )
    return _("Could not connect to %(what)s (reference %(reference)s)") % {
        "what": what,
        "reference": reference,
    }


def _resolve(name: str, port: int, *, purpose: str) -> list[str]:
    try:
        answers = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reference = new_reference()
        logger.warning(
            "egress %s: refused %s %s:%s, it does not resolve: %s",
            reference,
            purpose,
            name,
            port,
            exc,
        )
        # Said the same way as a private address: which internal names exist is not theirs to learn.
        raise _not_public(name, port, purpose=purpose, reference=reference) from exc
    addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
    if not addresses:
        reference = new_reference()
        logger.warning("egress %s: %s %s:%s resolves to nothing", reference, purpose, name, port)
        raise _not_public(name, port, purpose=purpose, reference=reference)
    return addresses


def _not_public(name: str, port: int, *, purpose: str, reference: str) -> EgressRefused:
    return EgressRefused(
        _(
            "The server %(host)s cannot be found or is not a public internet address "
            "(reference %(reference)s)."
        )
        % {"host": name, "reference": reference},
        host=name,
        port=port,
        purpose=purpose,
        reference=reference,
        field="host",
    )


def _normalised(host: str) -> str:
    return (host or "").strip().strip("[]").rstrip(".").lower()
