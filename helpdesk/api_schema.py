"""How the OpenAPI description names the API's ways in (drf-spectacular extensions), and the
one error shape every operation may answer with."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "helpdesk.api_auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A merchant's API key: `Authorization: Bearer hd_<prefix>_<secret>`",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "helpdesk.api_auth.TenantSessionAuthentication"
    name = "Session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
