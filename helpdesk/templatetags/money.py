"""``{% money amount currency %}``: an amount as the reader's language writes it (¥300.00)."""

from __future__ import annotations

from decimal import Decimal

from django import template

from helpdesk.money import format_money

register = template.Library()


@register.simple_tag(name="money")
def money_tag(amount: Decimal | None, currency: str) -> str:
    if amount is None or not currency:
        return ""
    return format_money(Decimal(amount), currency)
