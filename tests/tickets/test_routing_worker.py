"""Routing on the production broker: a real Celery worker on Redis files an arriving
conversation, then runs the claim that gives it to an agent; an agent going offline hands their
conversation back through the broker to a colleague."""

from __future__ import annotations

import pytest

from helpdesk import tenancy
from tests.channels_in.polling import wait_for
from tests.conftest import acting
from tests.tickets.test_routing import arrive, team, ticket_of
from tickets import presence
from tickets.models import AgentPresence, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def has(tenant, n: int, user) -> bool:
    try:
        return ticket_of(tenant, n).assignee == user
    except Ticket.DoesNotExist:  # the worker has not filed it yet
        return False


def test_a_worker_on_redis_gives_an_arriving_conversation_to_an_agent_and_back_to_a_colleague(
    real_worker, tenant_acme, acme_api
):
    _group, (an, bo) = team(tenant_acme, ["an", "bo"], sticky=False)
    with tenancy.activate(tenant_acme):
        AgentPresence.objects.filter(user=bo).update(status="away", chosen_status="away")
    arrive(acme_api, 1)  # answered 202 before any processing; the worker does the rest

    wait_for(lambda: has(tenant_acme, 1, an))

    with tenancy.activate(tenant_acme):
        presence.set_presence(acting_agent=acting(bo, tenant_acme), status="online")
        presence.set_presence(acting_agent=acting(an, tenant_acme), status="offline")
    wait_for(lambda: has(tenant_acme, 1, bo))
