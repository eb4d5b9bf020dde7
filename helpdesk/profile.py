"""A person's own profile in a merchant: the name colleagues see, the interface language and the
signature under their email replies. Everyone edits their own, and only their own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Membership
from helpdesk.permissions import ActingAgent
from tickets import audit
from tickets.audit import AuditKind

MAX_DISPLAY_NAME_CHARS = Membership._meta.get_field("display_name").max_length
MAX_SIGNATURE_CHARS = 2000


def interface_languages() -> list[str]:
    """The languages a person may choose: the site's; "" is the merchant's default."""
    return [code for code, _name in settings.LANGUAGES]


def _own_membership(acting_agent: ActingAgent) -> Membership:
    if acting_agent.membership is None:
        # Platform support has no profile in a merchant it does not belong to.
        raise PermissionDenied(_("Only members of this merchant have a profile here"))
    return acting_agent.membership


def update_own_profile(
    *,
    acting_agent: ActingAgent,
    display_name: str,
    language: str,
    signature: str,
    phone: str | None = None,
) -> Membership:
    """Change the acting person's own display name, interface language ("" for the merchant's
    default), email signature and phone number (E.164; None leaves it) in this merchant;
    audited, nothing written when nothing changes."""
    membership = _own_membership(acting_agent)
    display_name = " ".join((display_name or "").split())
    signature = (signature or "").replace("\r\n", "\n").strip("\n")
    if len(display_name) > MAX_DISPLAY_NAME_CHARS:
        raise BadInput(
            _("A display name has at most %(count)s characters")
            % {"count": MAX_DISPLAY_NAME_CHARS},
            field="display_name",
        )
    if len(signature) > MAX_SIGNATURE_CHARS:
        raise BadInput(
            _("A signature has at most %(count)s characters") % {"count": MAX_SIGNATURE_CHARS},
            field="signature",
        )
    if language not in ["", *interface_languages()]:
        raise BadInput(_("Choose one of the languages offered"), field="language")
    wanted = {"display_name": display_name, "language": language, "signature": signature}
    if phone is not None:
        wanted["phone"] = own_phone(acting_agent, phone)
    return _save(acting_agent, membership, wanted)


def keep_language(*, acting_agent: ActingAgent, language: str) -> Membership | None:
    """Remember the language a person just switched to (the header's menu), so it is theirs at
    the next sign-in on any browser; a language not offered is ignored."""
    if acting_agent.membership is None or language not in interface_languages():
        return None
    return _save(acting_agent, acting_agent.membership, {"language": language})


def _save(acting_agent: ActingAgent, membership: Membership, wanted: dict[str, Any]) -> Membership:
    with transaction.atomic():
        membership.refresh_from_db(from_queryset=Membership.objects.select_for_update())
        changes = {
            field: (getattr(membership, field), value)
            for field, value in wanted.items()
            if getattr(membership, field) != value
        }
        if not changes:
            return membership
        for field, (_old, new) in changes.items():
            setattr(membership, field, new)
        membership.save(update_fields=list(changes))
        audit.record(
            actor=acting_agent,
            kind=AuditKind.MEMBER_PROFILE_CHANGED,
            obj=membership,
            changes=changes,
            details={"person": membership.user.get_username()},
        )
    return membership


def own_phone(acting_agent: ActingAgent, phone: str) -> str:
    """The phone number a person gives for themselves, in E.164 (the merchant's region is the
    default); "" clears it. The phone channel rings it while they are on duty."""
    from tickets.models import IdentityKind
    from tickets.services import normalise_identity

    phone = (phone or "").strip()
    if not phone:
        return ""
    # A number that is none is refused on the form's "phone" field.
    return normalise_identity(
        kind=IdentityKind.PHONE, value=phone, region=acting_agent.tenant.phone_region
    )
