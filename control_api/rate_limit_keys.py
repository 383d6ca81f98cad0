"""Who a rate limit counts: a client address (IPv6 by its /64, the block one subscriber gets), the
username a login names, or the signed-in user."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from flask import request

from .auth.identity import current_user

IPV6_PREFIX = 64


def client_ip() -> str:
    """The client's address (the proxies' X-Forwarded-For is applied first when TRUSTED_PROXIES > 0).

    An IPv6 client is keyed by its /64: one subscriber gets at least that many addresses, so keying by
    the full address would give it 2**64 budgets. An IPv4-mapped IPv6 address counts as its IPv4 one.
    """
    raw = request.remote_addr or "unknown"
    try:
        address = ipaddress.ip_address(raw.split("%", 1)[0])
    except ValueError:
        return f"ip:{raw}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)}"
    return f"ip:{address}"


def login_name() -> str:
    """The username a /token attempt names, in the case-insensitive form accounts are matched in: a
    guesser spreading attempts over many addresses still hits one budget per account."""
    source = request.get_json(silent=True) if request.is_json else request.form
    name = source.get("username") if isinstance(source, Mapping) else None
    return f"login:{str(name or '').strip().lower()[:200]}"


def current_user_key() -> str:
    """The signed-in user (``token_required`` ran first); by address otherwise."""
    user = current_user()
    return f"user:{user.id}" if user is not None else client_ip()
