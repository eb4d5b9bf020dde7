"""API permissions that DRF's settings import (so this module imports nothing of ours at load:
helpdesk.errors imports DRF, whose settings import this module)."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


class IdempotencyKeyHonoured(permissions.BasePermission):
    """Claims a write's ``Idempotency-Key`` once the caller is known (helpdesk.idempotency): a
    repeat is answered with the first result, without running the view again."""

    def has_permission(self, request: Request, view: Any) -> bool:
        from helpdesk import idempotency

        key = request.headers.get(idempotency.HEADER)
        if key is not None and request.method in idempotency.WRITE_METHODS:
            idempotency.claim(request, key)
        return True
