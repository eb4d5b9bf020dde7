"""Which adapter handles which channel kind. Adding a channel is one module and one line here.

Adapters are imported by dotted path when first used, so a channel's libraries load only in
processes that handle that channel.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from channels_in.base import Adapter, AdapterError

if TYPE_CHECKING:
    from channels_in.models import ChannelAccount

ADAPTERS: dict[str, str] = {
    "email": "channels_in.email.EmailAdapter",
    "api": "channels_in.json_api.JsonApiAdapter",
    "phone": "channels_in.phone.PhoneAdapter",
    "wechat": "channels_in.wechat.WeChatAdapter",
    "chat": "channels_in.chat.ChatAdapter",
}


@cache
def adapter_class(kind: str) -> type[Adapter]:
    try:
        path = ADAPTERS[kind]
    except KeyError:
        raise AdapterError(f"No adapter handles {kind!r} channels", permanent=True) from None
    return import_string(path)


def adapter_for(account: ChannelAccount) -> Adapter:
    return adapter_class(account.kind)(account)
