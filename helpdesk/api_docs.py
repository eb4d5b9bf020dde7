"""The API's description and its docs page, both served by us: no CDN, nothing loaded from
elsewhere (the Content-Security-Policy forbids it anyway)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.views import SpectacularAPIView
from rest_framework import permissions

from helpdesk import api_schema  # noqa: F401  (the schema's authentication extensions)


class SchemaView(SpectacularAPIView):
    """``/api/schema/``: the OpenAPI 3 description of /api/v1/ (YAML; ``?format=json``). Public:
    it tells what the API does, nothing of any merchant."""

    authentication_classes: list[type] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list[type] = []


def docs(request: HttpRequest) -> HttpResponse:
    """``/api/docs/``: the API reference, rendered in the page from the schema."""
    return render(
        request,
        "api/docs.html",
        {"schema_url": reverse("api-schema") + "?format=json"},
    )
