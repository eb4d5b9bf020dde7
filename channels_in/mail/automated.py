"""Recognising automated mail: auto-replies, bounces, delivery reports and mailing lists."""

from __future__ import annotations

import re

AUTOMATION_HEADERS = (
    "auto-submitted",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "return-path",
    "x-failed-recipients",
)


_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[\s_-]*(reply|response|antwort)|out of (the )?office|abwesenheitsnotiz"
    r"|自动回复|自動回覆|自動回复|undelivered mail returned to sender|delivery status notification"
    r"|mail delivery failed|undeliverable|returned mail|delivery failure|failure notice"
    r"|系统退信|退信)",
    re.IGNORECASE,
)


def automated_reason(
    headers: dict[str, str], ctype: str, sender: str, *, null_sender: bool = False
) -> str:
    """Why a mail was sent by a machine rather than a person, or "" if it was not."""
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"auto-submitted: {auto_submitted}"
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"):
        value = headers.get(name, "")
        if value and (
            name != "x-auto-response-suppress" or re.search(r"all|oof|autoreply", value, re.I)
        ):
            return f"{name}: {value.strip()}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"precedence: {precedence}"
    if headers.get("list-id") or headers.get("list-unsubscribe"):
        return "mailing list"
    local_part = sender.split("@", 1)[0].lower()
    if local_part in {"mailer-daemon", "postmaster"}:
        return "bounce"
    if null_sender or re.fullmatch(r"(<\s*>)?", headers.get("return-path", "x").strip()):
        return "null sender (bounce or notification)"
    if ctype == "multipart/report":
        return "delivery status report"
    if headers.get("x-failed-recipients"):
        return "bounce"
    if sender and "@" not in sender:
        # Nobody can answer `root`; retrying it would only fail again.
        return "sender has no domain (a local system account)"
    subject = headers.get("subject", "").strip()
    subject = re.sub(r"^((re|aw|fw|fwd|wg)\s*:\s*)+", "", subject, flags=re.IGNORECASE)
    if _AUTO_SUBJECT.match(subject):
        return f"subject: {subject[:80]}"
    return ""
