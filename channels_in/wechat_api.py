"""The WeChat Official Account API, as far as the helpdesk needs it: an access token (cached,
renewed when WeChat says it expired), Customer Service Messages (text and image) and media
uploads and downloads.

Every call goes through ``helpdesk.http`` (the egress guard, one time limit per call) to
``HELPDESK_WECHAT_API_BASE``. WeChat answers HTTP 200 with ``{"errcode": ..., "errmsg": ...}``
when it refuses; those become ``WeChatApiError`` with the code and a message for the agent.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from channels_in.base import AdapterError
from channels_in.crypto import decrypt_secret
from channels_in.models import WeChatAccount
from helpdesk import http

logger = logging.getLogger(__name__)

# WeChat's codes for an access token it no longer takes: invalid, expired, not the latest.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# The customer has not written for 48 hours (or unfollowed): WeChat refuses the reply.
OUT_OF_WINDOW = 45015
# Codes that mean the AppID, AppSecret or the server's IP is wrong: every call fails alike.
CREDENTIAL_ERRORS = frozenset({40002, 40013, 40125, 40164, 41002, 41004, 48001, 50001})
# Codes worth another try later: "system busy", rate limits.
TRANSIENT_ERRORS = frozenset({-1, 45009, 45011})
TOKEN_MARGIN_SECONDS = 300  # renew a token this long before WeChat says it expires
ANSWER_MAX_BYTES = 64 * 1024


class WeChatApiError(AdapterError):
    """WeChat refused a call (``errcode``), or could not be reached (``errcode`` None)."""

    def __init__(self, message: str, *, errcode: int | None = None, permanent: bool) -> None:
        super().__init__(message, permanent=permanent)
        self.errcode = errcode
        # Wrong credentials fail every reply alike: the channel pauses until an admin fixes
        # them (channels_in.outbound).
        self.pauses_channel = errcode in CREDENTIAL_ERRORS


@dataclass(frozen=True)
class Media:
    content: bytes
    content_type: str
    filename: str


def refused(answer: dict[str, Any]) -> WeChatApiError:
    """The error for an answer with a non-zero ``errcode``."""
    code = int(answer.get("errcode") or 0)
    errmsg = str(answer.get("errmsg", ""))[:200]
    if code == OUT_OF_WINDOW:
        message = _(
            "WeChat refused the reply: the customer has not written to the Official Account "
            "for 48 hours (or unfollowed it), so it can only be answered on another channel "
            "(WeChat error 45015)."
        )
    elif code in CREDENTIAL_ERRORS:
        message = _(
            "WeChat refused the channel's credentials: %(errmsg)s (WeChat error %(code)s). "
            "Check the AppID, the AppSecret and the IP allow-list in the WeChat platform."
        ) % {"errmsg": errmsg, "code": code}
    else:
        message = _("WeChat answered error %(code)s: %(errmsg)s") % {
            "code": code,
            "errmsg": errmsg,
        }
    return WeChatApiError(message, errcode=code, permanent=code not in TRANSIENT_ERRORS)


class WeChatApi:
    """One Official Account's API client."""

    def __init__(self, wechat: WeChatAccount) -> None:
        self.wechat = wechat
        self.base = settings.HELPDESK_WECHAT_API_BASE.rstrip("/")
        self.timeout = settings.HELPDESK_WECHAT_TIMEOUT_SECONDS
        self.token_key = f"wechat:token:{wechat.account_id}:{wechat.app_id}"

    # --- the access token ---

    def fetch_token(self) -> str:
        """A new access token from WeChat, cached for its lifetime (less a margin)."""
        secret = decrypt_secret(self.wechat.app_secret_encrypted)
        if not (self.wechat.app_id and secret):
            raise WeChatApiError(
                _("The WeChat channel has no AppID and AppSecret: enter them in its settings."),
                permanent=True,
            )
        query = urlencode(
            {"grant_type": "client_credential", "appid": self.wechat.app_id, "secret": secret}
        )
        answer = self._answer(self._get(f"/cgi-bin/token?{query}").content)
        token = str(answer.get("access_token", ""))
        if not token:
            raise WeChatApiError(_("WeChat sent no access token."), permanent=False)
        lifetime = int(answer.get("expires_in") or 7200)
        cache.set(self.token_key, token, timeout=max(lifetime - TOKEN_MARGIN_SECONDS, 60))
        return token

    def access_token(self) -> str:
        return cache.get(self.token_key) or self.fetch_token()

    def forget_token(self) -> None:
        cache.delete(self.token_key)

    # --- calls ---

    def call(self, path: str, *, document: dict[str, Any] | None = None, **post: Any) -> dict:
        """POST to ``path`` with the access token; a token WeChat no longer takes is renewed
        and the call made once more."""
        for attempt in (1, 2):
            token = self.access_token() if attempt == 1 else self.fetch_token()
            separator = "&" if "?" in path else "?"
            url = f"{self.base}{path}{separator}access_token={token}"
            if document is not None:
                body = json.dumps(document, ensure_ascii=False).encode()
                post = {"body": body, "content_type": "application/json; charset=utf-8"}
            try:
                return self._answer(self._post(url, **post))
            except WeChatApiError as error:
                if error.errcode in TOKEN_ERRORS and attempt == 1:
                    logger.info(
                        "wechat %s: token refused (%s), renewing", self.wechat.app_id, error
                    )
                    self.forget_token()
                    continue
                raise
        raise AssertionError("unreachable")

    def send_text(self, openid: str, text: str) -> None:
        self.call(
            "/cgi-bin/message/custom/send",
            document={"touser": openid, "msgtype": "text", "text": {"content": text}},
        )

    def send_image(self, openid: str, media_id: str) -> None:
        self.call(
            "/cgi-bin/message/custom/send",
            document={"touser": openid, "msgtype": "image", "image": {"media_id": media_id}},
        )

    def upload_image(self, *, content: bytes, content_type: str) -> str:
        """Upload an image as temporary media (kept by WeChat 3 days); its media_id."""
        extension = mimetypes.guess_extension(content_type) or ".jpg"
        boundary = uuid.uuid4().hex
        body = (
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="media"; filename="image{extension}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        answer = self.call(
            "/cgi-bin/media/upload?type=image",
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        media_id = str(answer.get("media_id", ""))
        if not media_id:
            raise WeChatApiError(_("WeChat took the image but sent no media_id."), permanent=False)
        return media_id

    def download_media(self, media_id: str, *, max_bytes: int, timeout: float) -> Media:
        """A customer's image, voice or video by its media_id. WeChat answers a video with a
        JSON link to it, which is then downloaded too."""
        fetched = None
        for attempt in (1, 2):
            token = self.access_token() if attempt == 1 else self.fetch_token()
            query = urlencode({"access_token": token, "media_id": media_id})
            fetched = self._get(f"/cgi-bin/media/get?{query}", max_bytes=max_bytes, timeout=timeout)
            if not _is_json(fetched):
                return Media(fetched.content, fetched.content_type, fetched.filename)
            answer = json.loads(fetched.content or b"{}")
            if answer.get("video_url"):
                video = self._get(
                    str(answer["video_url"]), max_bytes=max_bytes, timeout=timeout, absolute=True
                )
                return Media(video.content, video.content_type or "video/mp4", video.filename)
            error = refused(answer)
            if error.errcode in TOKEN_ERRORS and attempt == 1:
                self.forget_token()
                continue
            raise error
        raise AssertionError("unreachable")

    # --- HTTP ---

    def _get(
        self,
        path: str,
        *,
        max_bytes: int = ANSWER_MAX_BYTES,
        timeout: float | None = None,
        absolute: bool = False,
    ) -> http.Fetched:
        url = path if absolute else f"{self.base}{path}"
        try:
            return http.fetch(url, max_bytes=max_bytes, timeout=timeout or self.timeout)
        except http.HttpFailure as failure:
            raise WeChatApiError(failure.message, permanent=failure.permanent) from failure

    def _post(self, url: str, *, body: bytes, content_type: str) -> bytes:
        try:
            return http.post(
                url, body=body, headers={"Content-Type": content_type}, timeout=self.timeout
            ).body
        except http.HttpFailure as failure:
            raise WeChatApiError(failure.message, permanent=failure.permanent) from failure

    @staticmethod
    def _answer(body: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(body)
        except ValueError:
            raise WeChatApiError(_("WeChat's answer is not JSON."), permanent=False) from None
        if not isinstance(answer, dict):
            raise WeChatApiError(_("WeChat's answer is not JSON."), permanent=False)
        if int(answer.get("errcode") or 0) != 0:
            raise refused(answer)
        return answer


def _is_json(fetched: http.Fetched) -> bool:
    return fetched.content_type in ("application/json", "text/plain") or (
        fetched.content[:1] == b"{"
    )
