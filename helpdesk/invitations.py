"""Inviting people into a merchant: the invitation, its emailed link, and joining by it.

Rules, in the merchant's words:
- owners and admins invite people (``MANAGE_MEMBERS``), once their own email is verified; only
  an owner invites another owner;
- the link works once, until it expires (``HELPDESK_INVITATION_DAYS``) or is revoked; sending
  it again makes a new link and the old one stops working;
- one email is one account: someone new sets a name and password and gets an account (their
  email counts as verified, since the link reached it); someone who has an account signs in
  as that account and the merchant is added to it.
Only a hash of a link's token is stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin

from allauth.account.models import EmailAddress
from allauth.account.utils import user_username
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from helpdesk import tenancy
from helpdesk.errors import BadInput, HelpdeskError, NotFound, PermissionDenied
from helpdesk.models import Invitation, Membership, Role, Tenant
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.signup import email_taken, require_verified_email
from tickets import audit
from tickets.audit import AuditKind

logger = logging.getLogger(__name__)


class InvitationUnusable(HelpdeskError):
    """A link that worked once and no longer does: used, revoked or expired (410 Gone)."""

    code = "invitation_unusable"
    status = 410


class InvitationNotSent(HelpdeskError):
    """The invitation is saved but its email could not be handed to the mail server."""

    code = "invitation_not_sent"
    status = 502


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def _expiry(now: Any) -> Any:
    return now + timedelta(days=settings.HELPDESK_INVITATION_DAYS)


def invitation_url(token: str) -> str:
    """The link in the email (the platform's public address, as other mail sent from here)."""
    return urljoin(settings.HELPDESK_PUBLIC_URL, reverse("invitation", args=[token]))


def pending_invitations(tenant: Tenant) -> QuerySet[Invitation]:
    """The merchant's invitations not yet accepted nor revoked (expired ones included, to send
    again), newest first."""
    return (
        Invitation.objects.filter(tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by")
        .order_by("-sent_at", "-pk")
    )


def _checked_email(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise BadInput(_("Enter a valid email address"), field="email") from exc
    return email


def _require_may_invite(acting_agent: ActingAgent, role: str) -> None:
    require(acting_agent, Capability.MANAGE_MEMBERS)
    if role not in Role.values:
        raise BadInput(_("Unknown role %(role)s") % {"role": role}, field="role")
    if role == Role.OWNER:
        require(acting_agent, Capability.MANAGE_MERCHANT)
    require_verified_email(acting_agent)


def _summary(invitation: Invitation) -> dict[str, Any]:
    return {"email": invitation.email, "role": invitation.role}


def invite_member(*, acting_agent: ActingAgent, email: str, role: str) -> Invitation:
    """Invite someone by email into the acting person's merchant in ``role``; the email with
    the link goes out once the invitation is saved."""
    _require_may_invite(acting_agent, role)
    email = _checked_email(email)
    tenant = acting_agent.tenant
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise BadInput(
            _("%(email)s already belongs to this merchant") % {"email": email}, field="email"
        )
    token, token_hash = _new_token()
    now = timezone.now()
    with transaction.atomic():
        # One pending invitation per address: two admins inviting at once cannot both add one.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        if pending_invitations(tenant).filter(email__iexact=email).exists():
            raise BadInput(
                _("%(email)s is already invited; send the invitation again from the list below")
                % {"email": email},
                field="email",
            )
        invitation = Invitation.objects.create(
            tenant=tenant,
            email=email,
            role=role,
            invited_by=acting_agent.user,
            token_hash=token_hash,
            sent_at=now,
            expires_at=_expiry(now),
        )
        with tenancy.activate(tenant):
            audit.record(
                actor=acting_agent,
                kind=AuditKind.INVITATION_SENT,
                obj=invitation,
                changes={key: (None, value) for key, value in _summary(invitation).items()},
            )
    _send(invitation, token)
    return invitation


def _locked(invitation: Invitation) -> Invitation:
    invitation.refresh_from_db(from_queryset=Invitation.objects.select_for_update())
    return invitation


def _own(acting_agent: ActingAgent, invitation: Invitation) -> None:
    if invitation.tenant_id != acting_agent.tenant.pk:
        raise NotFound(_("No such invitation"))


def resend_invitation(*, acting_agent: ActingAgent, invitation: Invitation) -> Invitation:
    """Send a pending invitation again with a new link (the old one stops working) and a new
    expiry date."""
    _own(acting_agent, invitation)
    _require_may_invite(acting_agent, invitation.role)
    token, token_hash = _new_token()
    now = timezone.now()
    with transaction.atomic():
        _locked(invitation)
        if invitation.accepted_at or invitation.revoked_at:
            raise BadInput(_("This invitation was already accepted or revoked"))
        old_expiry = invitation.expires_at
        invitation.token_hash = token_hash
        invitation.sent_at = now
        invitation.expires_at = _expiry(now)
        invitation.save(update_fields=["token_hash", "sent_at", "expires_at"])
        with tenancy.activate(invitation.tenant):
            audit.record(
                actor=acting_agent,
                kind=AuditKind.INVITATION_RESENT,
                obj=invitation,
                changes={"expires_at": (old_expiry, invitation.expires_at)},
                details=_summary(invitation),
            )
    _send(invitation, token)
    return invitation


def revoke_invitation(*, acting_agent: ActingAgent, invitation: Invitation) -> Invitation:
    """Withdraw a pending invitation: its link stops working."""
    _own(acting_agent, invitation)
    require(acting_agent, Capability.MANAGE_MEMBERS)
    if invitation.role == Role.OWNER:
        require(acting_agent, Capability.MANAGE_MERCHANT)
    with transaction.atomic():
        _locked(invitation)
        if invitation.revoked_at is not None:
            return invitation
        if invitation.accepted_at is not None:
            raise BadInput(
                _("%(email)s already accepted; remove them from the members instead")
                % {"email": invitation.email}
            )
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        with tenancy.activate(invitation.tenant):
            audit.record(
                actor=acting_agent,
                kind=AuditKind.INVITATION_REVOKED,
                obj=invitation,
                changes={"revoked_at": (None, invitation.revoked_at)},
                details=_summary(invitation),
            )
    return invitation


def _send(invitation: Invitation, token: str) -> None:
    """Mail the link, in the merchant's language. Called after the invitation is committed."""
    tenant = invitation.tenant
    inviter = invitation.invited_by
    context = {
        "merchant": tenant.name,
        "role": invitation.get_role_display,
        "inviter": (inviter.get_full_name() or inviter.email) if inviter else "",
        "url": invitation_url(token),
        "expires_at": invitation.expires_at,
        "time_zone": tenant.time_zone,
    }
    with translation.override(tenant.locale or settings.LANGUAGE_CODE):
        subject = render_to_string("invitations/email_subject.txt", context).strip()
        body = render_to_string("invitations/email_message.txt", context)
    try:
        send_mail(subject, body, None, [invitation.email])
    except OSError as exc:  # smtplib's errors are OSErrors, as are refused connections
        logger.warning("invitation %s not sent: %s", invitation.pk, exc)
        raise InvitationNotSent(
            _(
                "The invitation to %(email)s is saved but its email could not be sent; try "
                "“Send again” in a moment"
            )
            % {"email": invitation.email}
        ) from exc


# --- joining by the link ------------------------------------------------------------------------


def _refuse_unusable(invitation: Invitation) -> None:
    if invitation.accepted_at is not None:
        raise InvitationUnusable(
            _("This invitation was already used. Sign in to reach %(merchant)s.")
            % {"merchant": invitation.tenant.name},
            reason="used",
        )
    if invitation.revoked_at is not None:
        raise InvitationUnusable(
            _("This invitation was withdrawn. Ask %(merchant)s for a new one.")
            % {"merchant": invitation.tenant.name},
            reason="revoked",
        )
    if invitation.expires_at <= timezone.now():
        raise InvitationUnusable(
            _("This invitation has expired. Ask %(merchant)s to send it again.")
            % {"merchant": invitation.tenant.name},
            reason="expired",
        )
    if not invitation.tenant.is_active:
        raise InvitationUnusable(_("This merchant no longer uses the helpdesk."), reason="closed")


def invitation_for_token(token: str) -> Invitation:
    """The usable invitation a link's token names; NotFound or InvitationUnusable otherwise."""
    invitation = (
        Invitation.objects.select_related("tenant", "invited_by")
        .filter(token_hash=hash_token(token or ""))
        .first()
    )
    if invitation is None:
        raise NotFound(
            _("This invitation link is not valid. Check that you copied all of it."),
            reason="unknown",
        )
    _refuse_unusable(invitation)
    return invitation


def _join(invitation: Invitation, user: Any, display_name: str = "") -> Membership:
    """Add the membership and mark the invitation used (inside the caller's transaction)."""
    membership, created = Membership.objects.get_or_create(
        tenant=invitation.tenant,
        user=user,
        defaults={"role": invitation.role, "display_name": display_name[:120]},
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    # The link reached this mailbox: the address is verified.
    address, _created = EmailAddress.objects.get_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    if not address.verified:
        EmailAddress.objects.filter(pk=address.pk).update(verified=True)
    with tenancy.activate(invitation.tenant):
        audit.record(
            actor=ActingAgent(user=user, tenant=invitation.tenant, membership=membership),
            kind=AuditKind.INVITATION_ACCEPTED,
            obj=invitation,
            changes={"role": (None, membership.role)} if created else None,
            details={**_summary(invitation), "person": user.get_username()},
        )
    return membership


def accept_invitation(*, token: str, user: Any) -> Membership:
    """The signed-in person joins the merchant: the invitation must be for their email."""
    invitation = invitation_for_token(token)
    if (user.email or "").lower() != invitation.email.lower():
        raise PermissionDenied(
            _("This invitation is for %(email)s. Sign out, then sign in as %(email)s to accept it.")
            % {"email": invitation.email},
            reason="other_account",
        )
    with transaction.atomic():
        _locked(invitation)
        _refuse_unusable(invitation)
        return _join(invitation, user)


def accept_invitation_with_new_account(*, token: str, name: str, password: str) -> Any:
    """Someone new joins: an account for the invitation's email, with this name and password."""
    invitation = invitation_for_token(token)
    name = (name or "").strip()
    if not name:
        raise BadInput(_("Tell us your name"), field="name")
    if email_taken(invitation.email):
        raise BadInput(
            _("%(email)s already has an account: sign in to accept the invitation")
            % {"email": invitation.email},
            reason="account_exists",
        )
    User = get_user_model()
    user = User(email=invitation.email, first_name=name[:150])
    user_username(user, _free_username(invitation.email))
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise BadInput(" ".join(exc.messages), field="password1") from exc
    user.set_password(password)
    try:
        with transaction.atomic():
            _locked(invitation)
            _refuse_unusable(invitation)
            user.save()
            _join(invitation, user, display_name=name)
    except IntegrityError as exc:  # the same email signed up a moment earlier
        raise BadInput(
            _("%(email)s already has an account: sign in to accept the invitation")
            % {"email": invitation.email},
            reason="account_exists",
        ) from exc
    return user


def _free_username(email: str) -> str:
    """A username for a new account, made from its email as signup makes it."""
    from allauth.account.adapter import get_adapter

    return get_adapter().generate_unique_username([email, "user"])
