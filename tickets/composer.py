"""What an agent sends besides the text: files, and further people in CC and BCC.

The reply and note services, and starting a conversation, check and store these the same way;
the composer reads here what it may offer on a ticket.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

import filetype
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.validators import validate_email
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput
from helpdesk.models import Tenant
from helpdesk.tenancy import require_tenant
from tickets.models import Attachment, IdentityKind, Message, Ticket

logger = logging.getLogger(__name__)

# One message carries at most this many files; together they fit the merchant's attachment
# limit, which is also the largest mail the merchant keeps from customers.
MAX_FILES = 10
MAX_COPIES = 20  # addresses in CC and in BCC, each


def copy_addresses(value: str | Iterable[str], *, field: str) -> list[str]:
    """Addresses typed for CC or BCC (comma- or semicolon-separated, "Name <a@b>" allowed),
    each checked, lower-cased and listed once; BadInput naming the first that is not one."""
    if isinstance(value, str):
        value = [value]
    parts = [part for item in value for part in (item or "").replace(";", ",").split(",")]
    found: list[str] = []
    for part in parts:
        if not part.strip():
            continue
        pairs = getaddresses([part])
        address = pairs[0][1].strip() if len(pairs) == 1 else ""
        try:
            validate_email(address)
        except ValidationError:
            raise BadInput(
                _("%(value)s is not an email address") % {"value": part.strip()}, field=field
            ) from None
        address = address.lower()
        if address not in found:
            found.append(address)
    if len(found) > MAX_COPIES:
        raise BadInput(
            _("At most %(count)s addresses, please") % {"count": MAX_COPIES}, field=field
        )
    return found


def check_files(files: Sequence[File], *, tenant: Tenant | None = None) -> None:
    """Refuse (BadInput on ``attachments``) more files than one message carries, or files
    together larger than the merchant's attachment limit."""
    tenant = tenant or require_tenant()
    if len(files) > MAX_FILES:
        raise BadInput(
            _("At most %(count)s files can go with one message") % {"count": MAX_FILES},
            field="attachments",
        )
    total = sum(file.size or 0 for file in files)
    if total > tenant.max_attachment_bytes:
        raise BadInput(
            _("The files come to %(size)s; this merchant's limit is %(limit)s per message")
            % {
                "size": filesizeformat(total),
                "limit": filesizeformat(tenant.max_attachment_bytes),
            },
            field="attachments",
        )


def check_outgoing(
    *, channel: str, files: Sequence[File], cc: Sequence[str], bcc: Sequence[str]
) -> None:
    """Refuse what the channel cannot carry: files on a channel that takes none, CC and BCC
    anywhere but email. The text is not sent without them: the customer would read of a file
    they never got."""
    from channels_in import outbound

    if files and not outbound.carries_files(channel):
        raise BadInput(
            _("Files cannot be sent on %(channel)s: send the text alone, or a link")
            % {"channel": Ticket(channel=channel).get_channel_display()},
            field="attachments",
        )
    if (cc or bcc) and not outbound.carries_copies(channel):
        raise BadInput(_("CC and BCC are for email only"), field="cc" if cc else "bcc")


class WrittenFiles:
    """The files written for one message, removed again if its transaction fails."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @contextmanager
    def removed_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            for name in self.names:
                try:
                    default_storage.delete(name)
                except OSError:
                    logger.warning("could not remove attachment file %s", name, exc_info=True)
            raise


def attach_files(message: Message, files: Sequence[File], *, stored: WrittenFiles) -> None:
    """Store the agent's files as the saved message's attachments, each labelled with the
    content type its bytes show (``filetype``), else its name's, else a plain download.
    Written files are listed in ``stored``, for the caller to remove if its transaction fails."""
    for file in files:
        name = os.path.basename((file.name or "").replace("\\", "/")).replace("\x00", "")
        attachment = Attachment(
            message=message,
            filename=name.strip()[:255] or "attachment",
            content_type=_content_type(file, name),
            size=file.size or 0,
        )
        file.seek(0)
        attachment.file.save(attachment.filename, file, save=False)
        stored.names.append(attachment.file.name)
        attachment.save()


def _content_type(file: File, name: str) -> str:
    file.seek(0)
    head = file.read(8192)
    file.seek(0)
    try:
        kind = filetype.guess(head) if head else None
    except Exception:  # sniffing is a hint, never a reason to refuse the file
        kind = None
    if kind is not None:
        return kind.mime
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


# --- what the composer offers ---------------------------------------------------------------


@dataclass(frozen=True)
class ComposerOptions:
    can_attach: bool
    can_copy: bool
    reply_all_cc: list[str]
    max_files: int
    max_bytes: int


def composer_options(ticket: Ticket, loaded: Sequence[Message] | None = None) -> ComposerOptions:
    """What the reply form offers on this ticket: files and CC/BCC where the channel carries
    them, and CC filled in as "reply all" would (``loaded``: the ticket's messages, when the
    page has read them)."""
    from channels_in import outbound

    can_copy = outbound.carries_copies(ticket.channel)
    return ComposerOptions(
        can_attach=outbound.carries_files(ticket.channel),
        can_copy=can_copy,
        reply_all_cc=reply_all_cc(ticket, loaded) if can_copy else [],
        max_files=MAX_FILES,
        max_bytes=require_tenant().max_attachment_bytes,
    )


def _last_mail_metadata(ticket: Ticket, loaded: Sequence[Message] | None) -> Any:
    """The metadata of the customer's latest message on the ticket, from ``loaded`` if given."""
    if loaded is None:
        return (
            ticket.messages.filter(
                direction=Message.Direction.INBOUND, author_customer_id=ticket.customer_id
            )
            .order_by("-created_at", "-pk")
            .values_list("metadata", flat=True)
            .first()
        )
    theirs = [
        m
        for m in loaded
        if m.direction == Message.Direction.INBOUND and m.author_customer_id == ticket.customer_id
    ]
    last = max(theirs, key=lambda m: (m.created_at, m.pk), default=None)
    return last.metadata if last is not None else None


def reply_all_cc(ticket: Ticket, loaded: Sequence[Message] | None = None) -> list[str]:
    """Who else the customer's last mail went to (its To and Cc, stored together on ingest),
    less the merchant's own addresses and the customer's."""
    from channels_in.models import Mailbox

    last = _last_mail_metadata(ticket, loaded)
    if not isinstance(last, dict):
        last = {}
    recipients = [str(r).lower() for r in (last or {}).get("recipients") or []]
    if not recipients:
        return []
    ours = {a.lower() for a in Mailbox.objects.values_list("address", flat=True)}
    theirs = {
        v.lower()
        for v in ticket.customer.identities.filter(kind=IdentityKind.EMAIL).values_list(
            "value", flat=True
        )
    }
    theirs.add(str((last or {}).get("from", "")).lower())
    return [r for r in recipients if r not in ours and r not in theirs][:MAX_COPIES]
