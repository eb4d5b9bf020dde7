"""A merchant's REST API keys: creating and revoking them, both audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import tenancy
from helpdesk.errors import BadInput, NotFound, PermissionDenied
from helpdesk.models import ApiKey, ApiScope
from helpdesk.permissions import ActingAgent, Actor, Capability, SystemActor, require
from helpdesk.signup import require_verified_email
from tickets import audit
from tickets.audit import AuditKind

# The platform operator at a shell: named so in the merchant's audit log.
COMMAND_LINE = SystemActor(on_behalf_of="manage.py revoke_api_key")


def key_summary(key: ApiKey) -> dict[str, Any]:
    """What the audit log says about a key (never its secret)."""
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "expires_at": key.expires_at,
        "acts_as": key.acting_user.get_username(),
    }


def record_key_created(*, actor: Any, key: ApiKey) -> None:
    """Audit a new key: each of its settings goes from nothing to its value."""
    audit.record(
        actor=actor,
        kind=AuditKind.API_KEY_CREATED,
        obj=key,
        changes={
            field: (None, value)
            for field, value in key_summary(key).items()
            if value not in (None, "", [])
        },
    )


def create_api_key(
    *, acting_agent: ActingAgent, name: str, scopes: list[str], expires_at: datetime | None
) -> tuple[ApiKey, str]:
    """An admin creates a key that acts as themselves in their merchant; its token is shown once."""
    require(acting_agent, Capability.MANAGE_API_KEYS)
    require_verified_email(acting_agent)  # a key reaches outside the helpdesk in its name
    if acting_agent.membership is None:
        # A key acts as its creator, and the API accepts only members of the key's merchant.
        raise PermissionDenied(
            _("A key acts as the person who creates it: only the merchant's members create keys")
        )
    name = name.strip()
    if not name:
        raise BadInput(_("Give the key a name"), field="name")
    if not scopes or not set(scopes) <= set(ApiScope.values):
        raise BadInput(_("Choose what the key may do: read, write or both"), field="scopes")
    if expires_at is not None and expires_at <= timezone.now():
        raise BadInput(_("The expiry must be in the future"), field="expires_at")
    ordered_scopes = [scope for scope in ApiScope.values if scope in scopes]
    with transaction.atomic(), tenancy.activate(acting_agent.tenant):
        key, token = ApiKey.issue(
            tenant=acting_agent.tenant,
            acting_user=acting_agent.user,
            name=name,
            scopes=ordered_scopes,
            expires_at=expires_at,
        )
        record_key_created(actor=acting_agent, key=key)
    return key, token


def revoke_api_key(*, acting_agent: Actor, key: ApiKey) -> ApiKey:
    """Revoke a key: its next call is refused. The command line acts as ``COMMAND_LINE``."""
    require(acting_agent, Capability.MANAGE_API_KEYS)
    if isinstance(acting_agent, ActingAgent) and key.tenant_id != acting_agent.tenant.pk:
        raise NotFound(_("No such API key"))
    with transaction.atomic(), tenancy.activate(key.tenant):
        key = ApiKey.objects.select_for_update().select_related("acting_user").get(pk=key.pk)
        if key.revoked_at is not None:
            return key
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.API_KEY_REVOKED,
            obj=key,
            changes={"revoked_at": (None, key.revoked_at)},
            details=key_summary(key),
        )
    return key
