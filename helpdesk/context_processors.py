"""Template context every page needs."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from helpdesk.tenancy import membership_of


def inbound_attention(request: HttpRequest) -> dict[str, Any]:
    """How many inbound messages failed, for the merchant's admins' navigation badge."""
    tenant = getattr(request, "tenant", None)
    if tenant is None or not request.user.is_authenticated:
        return {}
    membership = membership_of(request)
    if not (request.user.is_superuser or (membership and membership.is_admin)):
        return {}
    from channels_in.models import ChannelAccount, RawInbound

    return {
        "inbound_failed_count": RawInbound.objects.filter(state=RawInbound.State.FAILED).count(),
        "paused_channel_count": ChannelAccount.objects.filter(paused=True).count(),
    }
