"""``{% load customer_card %}{% customer_card ticket as card %}``: the ticket page's customer
card (tickets.customer_card), read once per page in a fixed number of queries."""

from __future__ import annotations

from django import template

from tickets import customer_card as cards
from tickets.models import Customer, Ticket

register = template.Library()


@register.simple_tag
def customer_card(ticket: Ticket) -> cards.CustomerCard:
    """The customer, their lifetime value and their latest orders, for the ticket's sidebar."""
    return cards.customer_card(ticket=ticket)


@register.simple_tag
def customer_orders(customer: Customer) -> cards.CustomerOrders:
    """``{% customer_orders customer as orders %}``: the customer page's orders section."""
    return cards.customer_orders(customer)
