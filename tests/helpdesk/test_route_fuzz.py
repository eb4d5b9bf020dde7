"""Bad input never gives a 500: every route of the URL conf, hit with odd values.

The routes are enumerated from the URL conf itself (includes and the admin too), so a route
added later is fuzzed without anyone remembering to. Each is requested by an anonymous visitor,
an agent, a merchant admin, the platform operator and an API key, with odd path values (huge
and zero ids, unicode, invalid UTF-8, very long), odd query strings (NUL, negative and huge
pages, markup, 10 KB values, invalid UTF-8) and odd form and JSON bodies (NUL, wrong types,
huge values). Every answer must be below 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern

from channels_in.models import ChannelAccount, Mailbox, RawInbound
from helpdesk import tenancy
from helpdesk.models import ApiKey, Role, Tenant
from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tickets import services
from tickets.models import Message

pytestmark = pytest.mark.django_db

HUGE_INT = "99999999999999999999"
TEN_KB = "界" * 3500  # 10 KB of UTF-8
# Path values must be NUL-free: a NUL cannot be sent in a request line (the middleware's own
# test sends one through the test client and gets 400).
ODD_PATH_VALUES = {
    "int": ["0", HUGE_INT],
    "slug": ["-", "a" * 300],
    "str": ["%E2%98%83%F0%9F%98%80", "%ff%fe", "a" * 300, "%01%7f"],
    "path": ["%E2%98%83/..%2f..%2f", "%ff%fe", "a" * 300],
}
ODD_QUERIES = [
    # NUL in a value and in a name: refused before any view reads them.
    "?q=%00&status=%00&%00=1",
    # What views and filters must survive by themselves.
    "?page=-1&p=-1&status=%3Cscript%3Ealert(1)%3C%2Fscript%3E&o=-99&_to_field=password&q=" + TEN_KB,
    f"?page={HUGE_INT}&p={HUGE_INT}&status=open&status=closed&q=%ff%fe%ED%A0%80&%ff%fe=%ff"
    "&next=//evil.example&tenant=%25&language=xx&e=1",
]
# Names forms in this project use, each given a value of the wrong kind.
FORM_FIELDS = [
    "q",
    "status",
    "body",
    "text",
    "note",
    "subject",
    "tenant",
    "next",
    "language",
    "name",
    "scopes",
    "expires_at",
    "priority",
    "assignee",
    "group",
    "amount",
    "login",
    "username",
    "password",
    "email",
    "code",
    "token",
    "reason",
]
ODD_FORMS: list[dict[str, Any]] = [
    {**{name: f"x\x00{name}" for name in FORM_FIELDS}, "\x00": "1"},
    {
        **{name: HUGE_INT for name in FORM_FIELDS},
        "scopes": ["read", "nonsense", ""],
        "expires_at": "not a date",
        "status": ["open", "solved", "<script>"],
        "next": "javascript:alert(1)",
    },
    {name: TEN_KB * 10 for name in FORM_FIELDS},
]
ODD_JSON = [
    '{"status": "\\u0000", "q": "\\u0000", "subject": {"a": null}, "priority": 99999999999999999999}',
    "[1, 2",
]
# Signing out ends the session the next requests rely on; it is requested with a client of its
# own (see client_for). Nothing is skipped.
SIGNS_OUT = {"logout", "account_logout"}


@dataclass
class Route:
    """One URL pattern and the concrete paths that exercise it."""

    name: str
    paths: list[str] = field(default_factory=list)
    resolves: bool = False  # at least one path reaches this route's view


def walk(patterns: list[Any], chain: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every leaf pattern with the chain of resolver patterns above it."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, (*chain, entry.pattern))
        elif isinstance(entry, URLPattern):
            yield (*chain, entry.pattern), entry


_ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^()]*)\)")


def fill(pattern: Any, values: dict[str, str], odd: str | None) -> str:
    """The pattern's text with its parameters filled: with ``odd`` values of the parameter's
    kind when given, else with the realistic value for its name."""

    def value_for(name: str, kind: str, alternatives: list[str] | None = None) -> str:
        if odd is not None:
            return ODD_PATH_VALUES[kind][int(odd) % len(ODD_PATH_VALUES[kind])]
        if alternatives:
            return alternatives[0]
        return values.get(name, {"int": "1", "slug": "acme"}.get(kind, "1"))

    if isinstance(pattern, RoutePattern):
        route = str(pattern)
        return _ROUTE_PARAMETER.sub(lambda m: value_for(m["name"], m["converter"] or "str"), route)
    if isinstance(pattern, RegexPattern):
        regex = str(pattern).lstrip("^").rstrip("$").replace("\\Z", "")

        def group(m: re.Match[str]) -> str:
            body = m["body"]
            if re.fullmatch(r"[\w|-]+", body):
                return value_for(m["name"], "slug", body.split("|"))
            kind = "int" if body in {r"\d+", "[0-9]+"} else "str"
            return value_for(m["name"], kind)

        text = _REGEX_GROUP.sub(group, regex)
        return text.replace("\\.", ".").replace("\\-", "-")
    raise AssertionError(f"unknown pattern type {type(pattern).__name__}")


def enumerate_routes(values: dict[str, str]) -> list[Route]:
    routes: list[Route] = []
    for chain, leaf in walk(get_resolver().url_patterns):
        route = Route(name=leaf.name or leaf.lookup_str)
        realistic = "/" + "".join(fill(p, values, None) for p in chain)
        route.paths.append(realistic)
        for odd in ("0", "1", "2"):
            path = "/" + "".join(fill(p, values, odd) for p in chain)
            if path not in route.paths:
                route.paths.append(path)
        for path in route.paths:
            try:
                match = resolve(re.sub(r"%[0-9a-fA-F]{2}", "x", path))
            except Resolver404:
                continue
            if match.func == leaf.callback or match.url_name == leaf.name:
                route.resolves = True
        routes.append(route)
    return routes


@dataclass
class World:
    """A merchant with something behind every id: a ticket, a message, an inbound payload."""

    values: dict[str, str]
    identities: dict[str, Callable[[], Client]]


@pytest.fixture
def world(tenant_acme: Tenant, agent_li: Any, admin_zhao: Any, settings: Any) -> World:
    # The fuzz sends thousands of requests: quotas would answer 429 before the views run.
    settings.HELPDESK_API_RATE = "1000000/m"
    settings.HELPDESK_INBOUND_RATE = "1000000/m"
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    with tenancy.activate(tenant_acme):
        customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
        ticket = services.open_ticket(
            acting_agent=SYSTEM, customer=customer, subject="吸油烟机噪音很大", channel="email"
        )
        message = Message.objects.create(
            ticket=ticket,
            direction="inbound",
            channel="email",
            author_customer=customer,
            body_text="安装后噪音很大",
        )
        account = ChannelAccount.objects.create(kind="email", name="Acme support")
        Mailbox.objects.create(account=account, address="support@acme.example")
        raw = RawInbound.objects.create(
            account=account,
            external_id="<fuzz@example>",
            payload=b"Subject: hi\r\n\r\nhello",
            state=RawInbound.State.FAILED,
        )
        key, token = ApiKey.issue(
            tenant=tenant_acme, acting_user=admin_zhao, name="fuzz", scopes=["read", "write"]
        )
    MembershipFactory(tenant=tenant_acme, user=operator, role=Role.OWNER)

    def signed_in(user: Any) -> Callable[[], Client]:
        def make() -> Client:
            client = Client(raise_request_exception=False)
            client.force_login(user)
            return client

        return make

    def with_key() -> Client:
        return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {token}")

    return World(
        values={
            "number": str(ticket.number),
            "pk": str(message.pk),
            "account_id": str(account.pk),
            "kind": account.kind,
            "tenant_slug": tenant_acme.slug,
            "object_id": str(raw.pk),
            "key_id": str(key.pk),
            "content_type_id": "1",
            "user_id": str(agent_li.pk),
        },
        identities={
            "anonymous": lambda: Client(raise_request_exception=False),
            "agent": signed_in(agent_li),
            "merchant admin": signed_in(admin_zhao),
            "operator": signed_in(operator),
            "api key": with_key,
        },
    )


def odd_requests(path: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, url, client kwargs): odd queries, then odd bodies, for one path."""
    for query in ODD_QUERIES:
        yield "get", path + query, {}
    yield "post", path, {}
    for form in ODD_FORMS:
        yield "post", path, {"data": form}
    if path.startswith("/api/"):
        for body in ODD_JSON:
            yield "post", path, {"data": body, "content_type": "application/json"}


def turned_away(response: Any) -> bool:
    """The identity may not use this route at all: sent to sign in, or refused outright.

    Such a view answers before it reads any input, so odd input is sent to it only as the
    identities it lets in (keeping the whole fuzz near a minute).
    """
    if response.status_code in {401, 403}:
        return True
    location = response.get("Location", "") if response.status_code == 302 else ""
    return "/login/" in location


def fuzz(world: World, identity: str, *, odd_paths: bool) -> tuple[list[str], int]:
    """Every route requested as ``identity``: the requests that answered 500 or more, and how
    many requests were sent."""
    failures: list[str] = []
    sent = 0
    routes = enumerate_routes(world.values)
    unreachable = [r.name for r in routes if not r.resolves]
    assert not unreachable, f"the enumeration built no path reaching {unreachable}"
    make_client = world.identities[identity]
    client = make_client()

    def send(method: str, url: str, **kwargs: Any) -> Any:
        nonlocal sent
        response = getattr(client, method)(url, **kwargs)
        sent += 1
        if response.status_code >= 500:
            failures.append(f"{identity} {method.upper()} {url[:150]} -> {response.status_code}")
        return response

    for route in routes:
        if route.name in SIGNS_OUT:
            client = make_client()
        if odd_paths:
            for index, path in enumerate(route.paths[1:]):
                send("get", path)
                if index == 0:
                    send("post", path, data=ODD_FORMS[1])
        else:
            path = route.paths[0]
            if not turned_away(send("get", path)):
                for method, url, kwargs in odd_requests(path):
                    send(method, url, **kwargs)
                    if route.name in SIGNS_OUT:
                        client = make_client()
    return failures, sent


IDENTITIES = ["anonymous", "agent", "merchant admin", "operator", "api key"]


@pytest.mark.parametrize("identity", IDENTITIES)
def test_no_route_answers_a_server_error_to_odd_queries_and_bodies(world, identity):
    failures, sent = fuzz(world, identity, odd_paths=False)
    assert not failures, "\n".join(failures)
    assert sent > 50


@pytest.mark.parametrize("identity", ["agent", "operator"])
def test_no_route_answers_a_server_error_to_odd_path_values(world, identity):
    failures, sent = fuzz(world, identity, odd_paths=True)
    assert not failures, "\n".join(failures)
    assert sent > 100


# What a person sending a NUL sees: 400 and the reason, as a page or as JSON.


def test_a_nul_in_the_ticket_search_answers_400_with_the_reason_on_a_page(agent_li):
    client = login(agent_li)
    response = client.get("/tickets/?q=%00", HTTP_ACCEPT="text/html")
    assert response.status_code == 400
    page = response.content.decode()
    assert "“q” contains a character that cannot be accepted" in page
    assert "li.acme" in page  # the signed-in page, with the agent's own top bar


def test_a_nul_in_an_api_filter_answers_400_json_naming_the_parameter(agent_li):
    response = login(agent_li).get("/api/v1/tickets/?status=%00")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_input"
    assert response.json()["extra"] == {"field": "status", "where": "query"}


def test_a_nul_posted_to_the_merchant_switcher_answers_400_not_500(agent_li, globex_agent_li):
    response = login(agent_li).post("/switch-tenant/", {"tenant": "globex\x00"})
    assert response.status_code == 400
    assert response.json()["extra"]["field"] == "tenant"


def test_a_nul_in_the_session_cookie_or_a_header_answers_400_before_any_lookup(agent_li):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "abcdefgh\x00ijk"
    assert client.get("/tickets/").status_code == 400
    api = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Bearer hd_\x00_x")
    assert api.get("/api/v1/tickets/").status_code == 400


def test_a_nul_in_the_path_answers_400():
    response = Client(raise_request_exception=False).get(
        "/admin/helpdesk/tenant/%00/change/", HTTP_ACCEPT="text/html"
    )
    assert response.status_code == 400
    assert "cannot be accepted" in response.content.decode()


def test_raw_mail_labelled_as_a_form_is_not_parsed_as_one_and_still_accepted(acme_email):
    # curl --data-binary labels piped mail a form; its "&" and "%00" are just mail text.
    mail = (
        b"From: li.wei@example.cn\r\nTo: support@acme.example\r\nSubject: a&b=%00\r\n"
        b"Message-ID: <form-label@example.cn>\r\n\r\nq=%00&" + b"x=1&" * 2000 + b"\r\n"
    )
    response = Client().post(
        f"/inbound/acme/email/{acme_email.pk}/",
        mail,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 202
