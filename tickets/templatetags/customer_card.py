"""``{% load customer_card %}{% customer_orders customer as orders %}``: the customer page's
orders (tickets.customer_card; the ticket page's card comes from its view)."""

from __future__ import annotations

from django import template

from tickets import customer_card as cards
from tickets.models import Customer

register = template.Library()


@register.simple_tag
def customer_orders(customer: Customer) -> cards.CustomerOrders:
    """``{% customer_orders customer as orders %}``: the customer page's orders section."""
    return cards.customer_orders(customer)
