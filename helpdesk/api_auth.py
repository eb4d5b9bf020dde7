"""REST API authentication: a merchant's API key activates that merchant's tenant."""

from __future__ import annotations

import hmac
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from helpdesk import tenancy
from helpdesk.models import ApiKey, hash_api_secret


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer hd_<prefix>_<secret>``."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != self.keyword or not token.startswith("hd_"):
            return None
        _, _, rest = token.partition("_")
        prefix, _, secret = rest.partition("_")
        key = (
            ApiKey.objects.select_related("tenant", "acting_user")
            .filter(prefix=prefix, revoked_at__isnull=True, tenant__is_active=True)
            .first()
        )
        if key is None or not hmac.compare_digest(key.secret_hash, hash_api_secret(secret)):
            raise exceptions.AuthenticationFailed("Invalid or revoked API key")
        if not key.acting_user.memberships.filter(tenant=key.tenant).exists():
            raise exceptions.AuthenticationFailed(
                "The key's owner no longer works for this merchant"
            )
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        tenancy.activate_for_request(request._request, key.tenant)
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
