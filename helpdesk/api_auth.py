"""REST API authentication: a merchant's API key activates that merchant's tenant."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from helpdesk import tenancy
from helpdesk.models import ApiKey, ApiScope, hash_api_secret


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer hd_<prefix>_<secret>``."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != self.keyword or not token.startswith("hd_"):
            return None
        # Guessing keys: an address that sent too many wrong ones is refused for a while,
        # whatever key it sends next (a right guess must not answer differently).
        from helpdesk import throttles

        address = throttles.client_address(request)
        rate = settings.HELPDESK_API_BAD_KEY_RATE
        barred = throttles.exhausted(scope="api-bad-key", subject=address, rate=rate)
        if not barred.allowed:
            raise exceptions.Throttled(
                wait=barred.retry_after_seconds,
                detail=gettext("Too many invalid API keys from this address"),
            )
        _, _, rest = token.partition("_")
        prefix, _, secret = rest.partition("_")
        key = (
            ApiKey.objects.select_related("tenant", "acting_user")
            .filter(prefix=prefix, revoked_at__isnull=True, tenant__is_active=True)
            .first()
        )
        if key is None or not hmac.compare_digest(key.secret_hash, hash_api_secret(secret)):
            throttles.take(scope="api-bad-key", subject=address, rate=rate)
            raise exceptions.AuthenticationFailed(gettext("Invalid or revoked API key"))
        if key.is_expired(timezone.now()):
            raise exceptions.AuthenticationFailed(gettext("The API key has expired"))
        # A key acts as its person: once they may no longer sign in, or have left the
        # merchant, the key stops with them.
        if not key.acting_user.is_active:
            raise exceptions.AuthenticationFailed(gettext("The key's person has been deactivated"))
        membership = key.acting_user.memberships.filter(tenant=key.tenant).first()
        if membership is None:
            raise exceptions.AuthenticationFailed(
                gettext("The key's person no longer works for this merchant")
            )
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        tenancy.activate_for_request(request._request, key.tenant)
        # Imported here: helpdesk.permissions imports helpdesk.errors, which imports DRF, whose
        # settings import this module (a cycle when helpdesk.errors is imported first).
        from helpdesk.permissions import ActingAgent, bind_acting_agent

        # The key acts with its person's role here (a membership, never an operator's support
        # access): services and selectors check it like a signed-in person's.
        bind_acting_agent(
            request, ActingAgent(user=key.acting_user, tenant=key.tenant, membership=membership)
        )
        return key.acting_user, key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class TenantSessionAuthentication(authentication.SessionAuthentication):
    """Browser sessions: the middleware already activated the user's tenant; require one."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is not None and getattr(request._request, "tenant", None) is None:
            raise exceptions.PermissionDenied("Your account is not a member of any merchant")
        return result


class KeyScopeRequired(permissions.BasePermission):
    """An API key reads with the ``read`` scope and changes anything only with ``write``;
    views with ``required_scope = "admin"`` (merchant settings) also need ``admin``.

    Signed-in sessions are not keys: their person's role decides, in the services.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        # Imported here: helpdesk.errors imports DRF, whose settings import this module.
        from helpdesk.errors import PermissionDenied

        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        needed = ApiScope.READ if request.method in permissions.SAFE_METHODS else ApiScope.WRITE
        # A view of merchant settings (webhook subscriptions) needs the admin scope besides.
        if getattr(view, "required_scope", None) == ApiScope.ADMIN and key.allows(needed):
            needed = ApiScope.ADMIN
        if not key.allows(needed):
            raise PermissionDenied(
                gettext("This API key lacks the %(scope)s scope") % {"scope": needed.value},
                scope=needed.value,
            )
        return True
