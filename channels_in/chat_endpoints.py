"""The chat widget's HTTP endpoints, called from the merchant's store (another origin):

- ``GET /inbound/chat/<public key>/config/?lang=zh-CN``: the widget's words, pre-chat form,
  service styles, limits and whether anyone can answer now;
- ``POST /inbound/chat/<public key>/upload/``: a visitor's file (multipart: ``token``, ``id``,
  ``file``, optional ``text``), stored raw like any chat message.

Both answer only pages on the channel's allowed origins (CORS for those alone; 403 with the
reason otherwise). No cookie is involved: the visitor is known by the signed token the widget
sends.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_in import chat_visitors
from channels_in.chat import ChatFile
from channels_in.chat_widget import (
    ChatRefused,
    Widget,
    check_origin,
    page_language,
    someone_can_answer,
    visitor_of_token,
    widget_for_key,
    widget_words,
)
from channels_in.models import ChatVisitor
from helpdesk import tenancy
from helpdesk.errors import BadInput

# What a visitor may upload: images, PDFs and plain text.
ACCEPTED_TYPES = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)


def upload_limit(widget: Widget) -> int:
    return min(widget.tenant.max_attachment_bytes, settings.HELPDESK_CHAT_UPLOAD_MAX_BYTES)


def _answer(
    request: HttpRequest, status: int, data: dict, *, origin: str = "", language: str = "en"
) -> HttpResponse:
    response = JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    response["Content-Language"] = language
    return response


def _refusal(request: HttpRequest, refused: ChatRefused, *, origin: str = "") -> HttpResponse:
    return _answer(
        request,
        refused.status,
        {"message": refused.message, "code": refused.code, "extra": {}},
        origin=origin,
    )


def _error(
    request: HttpRequest, status: int, code: str, message: str, *, origin: str, **extra: object
) -> HttpResponse:
    return _answer(
        request, status, {"message": message, "code": code, "extra": extra}, origin=origin
    )


def _widget(request: HttpRequest, public_key: str) -> tuple[Widget, str]:
    widget = widget_for_key(public_key)
    origin = check_origin(widget.webchat, request.headers.get("Origin", ""))
    return widget, origin


@csrf_exempt
@require_http_methods(["GET", "OPTIONS"])
def widget_config(request: HttpRequest, public_key: str) -> HttpResponse:
    """What the widget needs to draw itself on the store's page."""
    try:
        widget, origin = _widget(request, public_key)
    except ChatRefused as refused:
        return _refusal(request, refused)
    if request.method == "OPTIONS":
        return _answer(request, 204, {}, origin=origin)
    language = page_language(request.GET.get("lang", ""))
    with tenancy.activate(widget.tenant):
        webchat = widget.webchat
        config = {
            "name": webchat.account.name,
            "merchant": widget.tenant.name,
            "language": language,
            "words": widget_words(language),
            "prechat": {"fields": webchat.prechat_fields, "required": webchat.prechat_required},
            "personas": chat_visitors.persona_choices(webchat),
            "available": someone_can_answer(webchat, fresh=True),
            "socket": f"/ws/chat/{public_key}/",
            "upload": f"/inbound/chat/{public_key}/upload/",
            "max_upload_bytes": upload_limit(widget),
            "max_upload_text": filesizeformat(upload_limit(widget)),
            "accept": list(ACCEPTED_TYPES),
        }
    return _answer(request, 200, config, origin=origin, language=language)


@csrf_exempt
@require_http_methods(["POST", "OPTIONS"])
def visitor_upload(request: HttpRequest, public_key: str) -> HttpResponse:
    """A visitor's file, as a chat message: 202 once stored (or already stored), 413 past the
    limit, 415 for a type the chat does not take, 429 past the rate, 401 without a valid
    visitor token; every refusal with a message the widget shows as it is."""
    try:
        widget, origin = _widget(request, public_key)
    except ChatRefused as refused:
        return _refusal(request, refused)
    if request.method == "OPTIONS":
        return _answer(request, 204, {}, origin=origin)
    limit = upload_limit(widget)
    language = page_language(
        request.GET.get("lang", "") or request.headers.get("Accept-Language", "")
    )
    with translation.override(language):
        too_large = _("The file is too large (at most %(limit)s).") % {
            "limit": filesizeformat(limit)
        }
        try:
            declared = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0
        if declared > limit + 64 * 1024:  # the form's own fields and boundaries besides the file
            return _error(request, 413, "too_large", too_large, origin=origin, limit=limit)
        upload = request.FILES.get("file")
        if upload is None:
            return _error(request, 400, "no_file", _("Choose a file to send."), origin=origin)
        if upload.size > limit:
            return _error(request, 413, "too_large", too_large, origin=origin, limit=limit)
        content_type = (upload.content_type or "").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_TYPES:
            return _error(
                request,
                415,
                "bad_type",
                _("This kind of file cannot be sent. Send an image, a PDF or a text file."),
                origin=origin,
            )
        with tenancy.activate(widget.tenant):
            visitor_id = visitor_of_token(widget.webchat, request.POST.get("token", ""))
            visitor = (
                ChatVisitor.objects.filter(account=widget.account, visitor_id=visitor_id).first()
                if visitor_id
                else None
            )
            if visitor is None:
                return _error(
                    request,
                    401,
                    "bad_token",
                    _("The chat does not know you yet: reload the page and try again."),
                    origin=origin,
                )
            file = ChatFile(
                filename=(upload.name or "file").replace("\\", "/").rsplit("/", 1)[-1][:255],
                content_type=content_type,
                content=upload.read(),
            )
            try:
                sent = chat_visitors.send_message(
                    widget,
                    visitor,
                    message_id=request.POST.get("id", ""),
                    text=request.POST.get("text", ""),
                    page=request.POST.get("page", ""),
                    file=file,
                )
            except chat_visitors.RateLimited as limited:
                response = _error(
                    request,
                    429,
                    "rate_limited",
                    _("You are sending messages too fast. Wait a few seconds and try again."),
                    origin=origin,
                )
                response["Retry-After"] = str(limited.retry_after_seconds)
                return response
            except BadInput as refused:
                return _error(request, 400, "bad_message", refused.message, origin=origin)
    return _answer(
        request, 202, {"status": sent.status, "id": request.POST.get("id", "")}, origin=origin
    )
