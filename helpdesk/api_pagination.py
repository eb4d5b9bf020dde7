"""Cursor pages for every API list: ``?cursor=`` from ``next``/``previous``, ``?page_size=``."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import CursorPagination
from rest_framework.request import Request


class CursorPage(CursorPagination):
    """Newest first by default. A view orders its list otherwise with ``cursor_ordering`` (a
    tuple of fields ending in a unique one), or lets the caller choose among
    ``ordering_fields`` with ``?ordering=``; the primary key then breaks ties, in the same
    direction, so rows sharing a value are neither skipped nor repeated between pages."""

    ordering = ("-pk",)
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        chosen = getattr(view, "cursor_ordering", None)
        if chosen and not request.query_params.get("ordering"):
            return tuple(chosen)
        ordering = tuple(super().get_ordering(request, queryset, view))
        if ordering and ordering[-1].lstrip("-") not in ("pk", "id"):
            ordering += ("-pk" if ordering[0].startswith("-") else "pk",)
        return ordering
