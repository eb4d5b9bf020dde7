"""Which adapter handles which channel kind. Adding a channel is one module and one line here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels_in.base import Adapter, AdapterError
from channels_in.email import EmailAdapter

if TYPE_CHECKING:
    from channels_in.models import ChannelAccount

ADAPTERS: dict[str, type[Adapter]] = {
    EmailAdapter.kind: EmailAdapter,
}


def adapter_for(account: ChannelAccount) -> Adapter:
    try:
        adapter_class = ADAPTERS[account.kind]
    except KeyError:
        raise AdapterError(
            f"No adapter handles {account.kind!r} channels", permanent=True
        ) from None
    return adapter_class(account)
