"""A merchant's admin sets each group's routing, business hours, holidays and members' capacity
under /settings/groups/<pk>/; agents and supervisors may not, and another merchant's groups are
not there at all."""

from __future__ import annotations

import datetime

import pytest
from django.forms import ValidationError

from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from tests.conftest import acting, login
from tickets import groups
from tickets.group_forms import HoursForm, read_day_hours
from tickets.models import AuditEvent, Group, GroupHoliday, GroupMember, RoutingStrategy

pytestmark = pytest.mark.django_db

CLOSED = [[] for _day in range(7)]
WEEKDAYS_9_TO_6 = [[["09:00", "18:00"]]] * 5 + [[], []]
NATIONAL_DAY = datetime.date(2025, 10, 1)


def make_group(tenant, name: str = "After-sales 售后", **fields) -> Group:
    with tenancy.activate(tenant):
        return Group.objects.create(name=name, **fields)


def make_member(group: Group, user, **fields) -> GroupMember:
    with tenancy.activate(group.tenant):
        return GroupMember.objects.create(group=group, user=user, **fields)


def fresh(group: Group) -> Group:
    with tenancy.activate(group.tenant):
        return Group.objects.get(pk=group.pk)


def events(tenant, action: str | None = None) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        rows = AuditEvent.objects.order_by("pk")
        return list(rows.filter(action=action) if action else rows)


def routing(**overrides) -> dict:
    return {
        "strategy": RoutingStrategy.ROUND_ROBIN,
        "sticky": False,
        "languages": [],
        "channels": [],
        "categories": [],
        "persona": "",
        "persona_description": "",
        **overrides,
    }


def as_browser(client, group: Group):
    """Posts as a page does: the middleware then shows a refusal as a message and goes back."""
    page = f"http://testserver/settings/groups/{group.pk}/"

    def post(path: str, data: dict):
        return client.post(path, data, HTTP_ACCEPT="text/html", HTTP_REFERER=page, follow=True)

    return post


# --- routing ---------------------------------------------------------------------------------


def test_routing_is_stored_normalised_and_audited_once(admin_zhao, in_acme):
    group = make_group(in_acme)
    admin = acting(admin_zhao)
    groups.set_group_routing(
        acting_agent=admin,
        group=group,
        **routing(
            languages=["ZH_Hans", " en ", "zh-hans", ""],
            channels=["wechat", "email", "wechat"],
            categories=[" Small   appliances ", "small appliances", "冰箱"],
            persona="Friendly",
            persona_description="  Warm and  patient ",
        ),
    )
    group = fresh(group)
    assert group.strategy == "round_robin"
    assert group.sticky is False
    assert group.languages == ["zh-hans", "en"]
    assert group.channels == ["email", "wechat"]
    assert group.categories == ["Small appliances", "冰箱"]
    assert (group.persona, group.persona_description) == ("friendly", "Warm and patient")
    [event] = events(in_acme, "group.routing_changed")
    assert event.changes["strategy"] == ["least_loaded", "round_robin"]
    assert event.changes["languages"] == [[], ["zh-hans", "en"]]
    assert event.changes["persona"] == ["", "friendly"]
    # The same settings again change nothing and write nothing.
    groups.set_group_routing(
        acting_agent=admin,
        group=group,
        **routing(
            languages=["zh-hans", "en"],
            channels=["wechat", "email"],
            categories=["Small appliances", "冰箱"],
            persona="friendly",
            persona_description="Warm and patient",
        ),
    )
    assert len(events(in_acme, "group.routing_changed")) == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"strategy": "fastest"}, "strategy", "“fastest” is not a way of handing out tickets"),
        (
            {"languages": ["zh", "chinese!"]},
            "languages",
            "Languages: “chinese!” is not a language code such as zh, zh-hans or en",
        ),
        (
            {"languages": [f"z{chr(ord('a') + i)}" for i in range(21)]},
            "languages",
            "A group speaks at most 20 languages",
        ),
        (
            {"channels": ["internal"]},
            "channels",
            "Channels: “internal” is not a channel customers write on",
        ),
        (
            {"categories": [f"c{i}" for i in range(31)]},
            "categories",
            "A group covers at most 30 product categories",
        ),
        (
            {"categories": ["x" * 101]},
            "categories",
            "Product categories: “xxxxxxxxxxxxxxxxxxxx…” is longer than 100 characters",
        ),
        (
            {"persona": "very friendly"},
            "persona",
            "Persona: use at most 40 lower-case letters, digits and hyphens, "
            "such as friendly or expert",
        ),
        (
            {"persona_description": "Warm"},
            "persona_description",
            "A persona description needs a persona: name the persona or clear the description",
        ),
    ],
)
def test_routing_refuses_what_it_cannot_use_and_writes_nothing(
    overrides, field, message, admin_zhao, in_acme
):
    group = make_group(in_acme)
    with pytest.raises(BadInput) as refused:
        groups.set_group_routing(
            acting_agent=acting(admin_zhao), group=group, **routing(**overrides)
        )
    assert (refused.value.message, refused.value.extra["field"]) == (message, field)
    assert fresh(group).strategy == "least_loaded"
    assert events(in_acme) == []


def test_a_persona_belongs_to_one_group_of_the_merchant(admin_zhao, in_acme, tenant_globex):
    make_group(in_acme, "Friendly team", persona="friendly")
    make_group(tenant_globex, "Globex friendly", persona="expert")
    second = make_group(in_acme, "Second")
    admin = acting(admin_zhao)
    with pytest.raises(BadInput) as refused:
        groups.set_group_routing(acting_agent=admin, group=second, **routing(persona="friendly"))
    assert refused.value.extra["field"] == "persona"
    assert refused.value.message == "Another group already has the persona friendly"
    assert fresh(second).persona == ""
    # Another merchant's persona names are theirs: acme may use "expert" too.
    groups.set_group_routing(acting_agent=admin, group=second, **routing(persona="expert"))
    assert fresh(second).persona == "expert"


# --- business hours --------------------------------------------------------------------------


def test_business_hours_are_stored_and_audited(admin_zhao, in_acme):
    group = make_group(in_acme)
    admin = acting(admin_zhao)
    reply = "您好，我们现在休息，{opens_at} 回复您。"
    groups.set_group_hours(
        acting_agent=admin,
        group=group,
        always_open=False,
        weekly_hours=WEEKDAYS_9_TO_6,
        out_of_hours_reply=f"  {reply} ",
    )
    group = fresh(group)
    assert (group.always_open, group.weekly_hours, group.out_of_hours_reply) == (
        False,
        WEEKDAYS_9_TO_6,
        reply,
    )
    [event] = events(in_acme, "group.hours_changed")
    assert event.changes == {
        "always_open": [True, False],
        "weekly_hours": [CLOSED, WEEKDAYS_9_TO_6],
        "out_of_hours_reply": ["", reply],
    }
    groups.set_group_hours(
        acting_agent=admin,
        group=group,
        always_open=False,
        weekly_hours=WEEKDAYS_9_TO_6,
        out_of_hours_reply=reply,
    )
    assert len(events(in_acme, "group.hours_changed")) == 1


@pytest.mark.parametrize(
    ("always_open", "weekly_hours", "reply", "field", "message"),
    [
        (
            False,
            CLOSED,
            "",
            "weekly_hours",
            "A group that is not open around the clock needs opening hours",
        ),
        (False, [[["09:00", "12:00"], ["11:00", "18:00"]], *CLOSED[1:]], "", "weekly_hours", None),
        (True, [[["09:00", "25:00"]], *CLOSED[1:]], "", "weekly_hours", None),
        (True, CLOSED[:6], "", "weekly_hours", None),
        (
            True,
            CLOSED,
            "x" * 1001,
            "out_of_hours_reply",
            "An out-of-hours reply has at most 1000 characters",
        ),
        (
            True,
            CLOSED,
            "We open {open_at}",
            "out_of_hours_reply",
            "Out-of-hours reply: {open_at} is not known; the one placeholder is {opens_at}",
        ),
    ],
)
def test_business_hours_refuse_what_routing_could_not_read(
    always_open, weekly_hours, reply, field, message, admin_zhao, in_acme
):
    group = make_group(in_acme)
    with pytest.raises(BadInput) as refused:
        groups.set_group_hours(
            acting_agent=acting(admin_zhao),
            group=group,
            always_open=always_open,
            weekly_hours=weekly_hours,
            out_of_hours_reply=reply,
        )
    assert refused.value.extra["field"] == field
    if message:
        assert refused.value.message == message
    assert fresh(group).weekly_hours == CLOSED
    assert events(in_acme) == []


@pytest.mark.parametrize(
    ("typed", "hours"),
    [
        ("", []),
        ("9-18", [["09:00", "18:00"]]),
        ("09:00-12:00, 13:00-18:00", [["09:00", "12:00"], ["13:00", "18:00"]]),
        ("13:00 - 18:00，9：00～12:00", [["09:00", "12:00"], ["13:00", "18:00"]]),
        ("18:00-24:00", [["18:00", "24:00"]]),
        ("09:00-12:00, 12:00-18:00", [["09:00", "18:00"]]),
        ("8.30-17.30", [["08:30", "17:30"]]),
    ],
)
def test_a_days_hours_as_typed_become_the_stored_format(typed, hours):
    assert read_day_hours(typed) == hours


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("25:00-26:00", "25:00 is not a time"),
        ("09:00-18:60", "18:60 is not a time"),
        ("24:00-24:00", "An opening cannot start at 24:00"),
        ("18:00-09:00", "18:00-09:00 ends before it starts"),
        ("09:00-12:00, 11:00-14:00", "09:00-12:00 and 11:00-14:00 overlap"),
        ("nine to five", "nine is not a time"),
        ("from nine", "write an opening as 09:00-18:00, not “from nine”"),
    ],
)
def test_a_days_hours_that_are_not_hours_are_refused_in_words(typed, message):
    with pytest.raises(ValidationError) as refused:
        read_day_hours(typed)
    assert refused.value.messages == [message]


def test_the_hours_form_names_the_day_that_is_wrong():
    form = HoursForm({"monday": "09:00-18:00", "tuesday": "09:00-25:00"})
    assert not form.is_valid()
    assert form.first_error().message == "Tuesday: 25:00 is not a time"
    assert form.first_error().extra["field"] == "tuesday"


# --- holidays --------------------------------------------------------------------------------


def test_holidays_are_added_once_per_date_and_removed(admin_zhao, in_acme):
    group = make_group(in_acme)
    admin = acting(admin_zhao)
    holiday = groups.add_group_holiday(
        acting_agent=admin, group=group, date=NATIONAL_DAY, name=" 国庆节 "
    )
    with pytest.raises(BadInput) as refused:
        groups.add_group_holiday(acting_agent=admin, group=group, date=NATIONAL_DAY, name="Again")
    assert refused.value.extra["field"] == "date"
    assert refused.value.message == "There is already a holiday on 2025-10-01"
    assert list(GroupHoliday.objects.values_list("date", "name")) == [(NATIONAL_DAY, "国庆节")]

    groups.remove_group_holiday(acting_agent=admin, group=group, holiday=holiday)
    groups.remove_group_holiday(acting_agent=admin, group=group, holiday=holiday)
    assert not GroupHoliday.objects.exists()
    assert [(e.action, e.changes) for e in events(in_acme)] == [
        ("group.holiday_added", {"details": {"date": "2025-10-01", "name": "国庆节"}}),
        ("group.holiday_removed", {"details": {"date": "2025-10-01", "name": "国庆节"}}),
    ]


# --- members' capacity -----------------------------------------------------------------------


def test_a_members_capacity_is_set_and_audited_with_their_name(admin_zhao, agent_li, in_acme):
    group = make_group(in_acme)
    make_member(group, agent_li)
    admin = acting(admin_zhao)
    groups.set_member_capacity(
        acting_agent=admin, group=group, user=agent_li, chat_capacity=5, ticket_capacity=0
    )
    member = GroupMember.objects.get(group=group, user=agent_li)
    assert (member.chat_capacity, member.ticket_capacity) == (5, 0)
    [event] = events(in_acme, "group.member_capacity_changed")
    assert event.changes == {
        "chat_capacity": [3, 5],
        "ticket_capacity": [20, 0],
        "details": {"person": "li.acme"},
    }
    groups.set_member_capacity(
        acting_agent=admin, group=group, user=agent_li, chat_capacity=5, ticket_capacity=0
    )
    assert len(events(in_acme, "group.member_capacity_changed")) == 1


@pytest.mark.parametrize(
    ("chats", "tickets", "field", "message"),
    [
        (51, 20, "chat_capacity", "Live conversations at once: a whole number from 0 to 50"),
        (-1, 20, "chat_capacity", "Live conversations at once: a whole number from 0 to 50"),
        ("3", 20, "chat_capacity", "Live conversations at once: a whole number from 0 to 50"),
        (3, 501, "ticket_capacity", "Open tickets at once: a whole number from 0 to 500"),
    ],
)
def test_a_capacity_out_of_range_is_refused(
    chats, tickets, field, message, admin_zhao, agent_li, in_acme
):
    group = make_group(in_acme)
    make_member(group, agent_li)
    with pytest.raises(BadInput) as refused:
        groups.set_member_capacity(
            acting_agent=acting(admin_zhao),
            group=group,
            user=agent_li,
            chat_capacity=chats,
            ticket_capacity=tickets,
        )
    assert (refused.value.extra["field"], refused.value.message) == (field, message)
    member = GroupMember.objects.get(group=group, user=agent_li)
    assert (member.chat_capacity, member.ticket_capacity) == (3, 20)
    assert events(in_acme) == []


def test_capacity_is_only_for_people_in_the_group(admin_zhao, agent_li, in_acme):
    group = make_group(in_acme)
    with pytest.raises(BadInput) as refused:
        groups.set_member_capacity(
            acting_agent=acting(admin_zhao),
            group=group,
            user=agent_li,
            chat_capacity=5,
            ticket_capacity=20,
        )
    assert refused.value.message == "li.acme is not in After-sales 售后"
    assert not GroupMember.objects.exists()


# --- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_change_routing_hours_holidays_or_capacity(
    person, request, tenant_acme, agent_li
):
    user = request.getfixturevalue(person)
    group = make_group(tenant_acme)
    make_member(group, agent_li)
    with tenancy.activate(tenant_acme):
        holiday = GroupHoliday.objects.create(group=group, date=NATIONAL_DAY, name="国庆节")
        who = acting(user)
        attempts = [
            lambda: groups.set_group_routing(acting_agent=who, group=group, **routing()),
            lambda: groups.set_group_hours(
                acting_agent=who,
                group=group,
                always_open=False,
                weekly_hours=WEEKDAYS_9_TO_6,
                out_of_hours_reply="",
            ),
            lambda: groups.add_group_holiday(
                acting_agent=who, group=group, date=datetime.date(2025, 10, 2), name=""
            ),
            lambda: groups.remove_group_holiday(acting_agent=who, group=group, holiday=holiday),
            lambda: groups.set_member_capacity(
                acting_agent=who, group=group, user=agent_li, chat_capacity=9, ticket_capacity=9
            ),
        ]
        for attempt in attempts:
            with pytest.raises(PermissionDenied):
                attempt()

    client = login(user)
    base = f"/settings/groups/{group.pk}"
    posts = {
        f"{base}/routing/": {"strategy": "round_robin", "languages": "zh"},
        f"{base}/hours/": {"monday": "09:00-18:00"},
        f"{base}/holidays/": {"date": "2025-10-02"},
        f"{base}/holidays/{holiday.pk}/remove/": {},
        f"{base}/members/{agent_li.pk}/capacity/": {"chat_capacity": 9, "ticket_capacity": 9},
    }
    for path, data in posts.items():
        assert client.post(path, data).status_code == 403, path
    group = fresh(group)
    assert (group.strategy, group.always_open, group.languages) == ("least_loaded", True, [])
    with tenancy.activate(tenant_acme):
        assert list(GroupHoliday.objects.values_list("date", flat=True)) == [NATIONAL_DAY]
        assert GroupMember.objects.get().chat_capacity == 3
    assert events(tenant_acme) == []


def test_another_merchants_group_holidays_and_members_answer_404(
    admin_zhao, agent_li, globex_agent_li, tenant_acme, tenant_globex
):
    outdoor = make_group(tenant_globex, "Outdoor")
    make_member(outdoor, globex_agent_li)
    with tenancy.activate(tenant_globex):
        holiday = GroupHoliday.objects.create(group=outdoor, date=NATIONAL_DAY)
    ours = make_group(tenant_acme)
    client = login(admin_zhao)
    base = f"/settings/groups/{outdoor.pk}"
    posts = {
        f"{base}/routing/": {"strategy": "round_robin"},
        f"{base}/hours/": {"monday": "09:00-18:00"},
        f"{base}/holidays/": {"date": "2025-10-02"},
        f"{base}/holidays/{holiday.pk}/remove/": {},
        f"{base}/members/{globex_agent_li.pk}/capacity/": {
            "chat_capacity": 9,
            "ticket_capacity": 9,
        },
        # Globex's holiday and member through acme's own group are not there either.
        f"/settings/groups/{ours.pk}/holidays/{holiday.pk}/remove/": {},
        f"/settings/groups/{ours.pk}/members/{globex_agent_li.pk}/capacity/": {
            "chat_capacity": 9,
            "ticket_capacity": 9,
        },
        # Someone of acme who is not in the group has no capacity there.
        f"/settings/groups/{ours.pk}/members/{agent_li.pk}/capacity/": {
            "chat_capacity": 9,
            "ticket_capacity": 9,
        },
    }
    for path, data in posts.items():
        assert client.post(path, data).status_code == 404, path
    outdoor = fresh(outdoor)
    assert (outdoor.strategy, outdoor.always_open) == ("least_loaded", True)
    with tenancy.activate(tenant_globex):
        assert GroupHoliday.objects.count() == 1
        assert GroupMember.objects.get().chat_capacity == 3
    assert events(tenant_globex) == []


# --- the pages -------------------------------------------------------------------------------


def test_admin_saves_routing_on_the_group_page_and_sees_it_again(admin_zhao, tenant_acme):
    group = make_group(tenant_acme)
    client = login(admin_zhao)
    post = as_browser(client, group)
    page = post(
        f"/settings/groups/{group.pk}/routing/",
        {
            "strategy": "round_robin",
            "languages": "ZH, en，zh-hans",
            "channels": ["chat", "wechat"],
            "categories": "Dishwashers, 冰箱、 Small appliances",
            "persona": "expert",
            "persona_description": "Knows every model",
        },
    ).content.decode()
    assert "The routing of After-sales 售后 is saved." in page
    group = fresh(group)
    assert (group.strategy, group.sticky) == ("round_robin", False)
    assert group.languages == ["zh", "en", "zh-hans"]
    assert group.channels == ["chat", "wechat"]
    assert group.categories == ["Dishwashers", "冰箱", "Small appliances"]
    assert (group.persona, group.persona_description) == ("expert", "Knows every model")
    assert 'value="zh, en, zh-hans"' in page
    assert 'value="Dishwashers, 冰箱, Small appliances"' in page
    assert 'value="wechat" id="id_channels_2" checked' in page
    assert 'value="email" id="id_channels_0" checked' not in page

    listing = client.get("/settings/groups/").content.decode()
    assert "Round robin: in turn" in listing
    assert "expert" in listing
    assert "24/7" in listing


def test_a_persona_taken_comes_back_as_a_message_with_what_was_typed(admin_zhao, tenant_acme):
    make_group(tenant_acme, "Friendly team", persona="friendly")
    group = make_group(tenant_acme)
    post = as_browser(login(admin_zhao), group)
    response = post(
        f"/settings/groups/{group.pk}/routing/",
        {"strategy": "round_robin", "languages": "zh", "persona": "friendly"},
    )
    page = response.content.decode()
    assert response.redirect_chain == [(f"http://testserver/settings/groups/{group.pk}/", 302)]
    assert '<li class="error">Another group already has the persona friendly</li>' in page
    # Beside the field too, with what the admin typed still in the form.
    assert '<span class="error">Another group already has the persona friendly</span>' in page
    assert 'name="languages" value="zh"' in page
    assert fresh(group).persona == ""
    assert events(tenant_acme) == []
    # The next visit shows the group as it is.
    again = login(admin_zhao).get(f"/settings/groups/{group.pk}/").content.decode()
    assert 'name="languages" value="zh"' not in again
    assert "Another group already has the persona" not in again


def test_admin_sets_weekday_hours_on_the_page_in_the_merchants_time_zone(admin_zhao, tenant_acme):
    group = make_group(tenant_acme)
    client = login(admin_zhao)
    page = as_browser(client, group)(
        f"/settings/groups/{group.pk}/hours/",
        {
            **{day: "9-18" for day in ("monday", "tuesday", "wednesday", "thursday", "friday")},
            "saturday": "",
            "sunday": "",
            "out_of_hours_reply": "We are closed; we answer from {opens_at}.",
        },
    ).content.decode()
    assert "The business hours of After-sales 售后 are saved." in page
    group = fresh(group)
    assert group.always_open is False
    assert group.weekly_hours == WEEKDAYS_9_TO_6
    assert group.out_of_hours_reply == "We are closed; we answer from {opens_at}."
    assert "Times are in Asia/Shanghai." in page
    assert 'name="monday" value="09:00-18:00"' in page
    assert "Business hours" in client.get("/settings/groups/").content.decode()


def test_a_wrong_time_is_shown_as_a_message_naming_the_day_and_nothing_is_saved(
    admin_zhao, tenant_acme
):
    group = make_group(tenant_acme)
    page = as_browser(login(admin_zhao), group)(
        f"/settings/groups/{group.pk}/hours/",
        {"monday": "09:00-18:00", "tuesday": "09:00-25:00"},
    ).content.decode()
    assert '<li class="error">Tuesday: 25:00 is not a time</li>' in page
    assert 'name="tuesday" value="09:00-25:00"' in page
    assert fresh(group).always_open is True
    assert events(tenant_acme) == []


def test_a_week_without_hours_needs_the_24_7_box(admin_zhao, tenant_acme):
    group = make_group(tenant_acme)
    page = as_browser(login(admin_zhao), group)(
        f"/settings/groups/{group.pk}/hours/", {"out_of_hours_reply": ""}
    ).content.decode()
    assert "A group that is not open around the clock needs opening hours" in page
    assert fresh(group).always_open is True


def test_admin_adds_and_removes_a_holiday_on_the_page(admin_zhao, tenant_acme):
    group = make_group(tenant_acme)
    client = login(admin_zhao)
    post = as_browser(client, group)
    page = post(
        f"/settings/groups/{group.pk}/holidays/", {"date": "2025-10-01", "name": "国庆节"}
    ).content.decode()
    assert "After-sales 售后 is closed on Oct. 1, 2025." in page
    assert '<tr data-date="2025-10-01">' in page and "国庆节" in page
    page = post(
        f"/settings/groups/{group.pk}/holidays/", {"date": "2025-10-01", "name": "Twice"}
    ).content.decode()
    assert '<li class="error">There is already a holiday on 2025-10-01</li>' in page
    page = post(f"/settings/groups/{group.pk}/holidays/", {"date": "someday"}).content.decode()
    assert '<li class="error">Date: Enter a valid date.</li>' in page
    with tenancy.activate(tenant_acme):
        [holiday] = GroupHoliday.objects.all()
    assert holiday.name == "国庆节"
    page = post(f"/settings/groups/{group.pk}/holidays/{holiday.pk}/remove/", {}).content.decode()
    assert "After-sales 售后 is no longer closed on Oct. 1, 2025." in page
    assert "No holidays." in page
    assert [e.action for e in events(tenant_acme)] == [
        "group.holiday_added",
        "group.holiday_removed",
    ]


def test_admin_sets_a_members_capacity_in_the_members_table(admin_zhao, agent_li, tenant_acme):
    group = make_group(tenant_acme)
    make_member(group, agent_li)
    post = as_browser(login(admin_zhao), group)
    path = f"/settings/groups/{group.pk}/members/{agent_li.pk}/capacity/"
    page = post(path, {"chat_capacity": "6", "ticket_capacity": "40"}).content.decode()
    assert "li.acme now takes up to 6 live conversations and 40 open tickets at once." in page
    assert 'name="chat_capacity" value="6"' in page
    page = post(path, {"chat_capacity": "60", "ticket_capacity": "40"}).content.decode()
    assert (
        '<li class="error">Live conversations at once: '
        "Ensure this value is less than or equal to 50.</li>"
    ) in page
    with tenancy.activate(tenant_acme):
        member = GroupMember.objects.get()
        assert (member.chat_capacity, member.ticket_capacity) == (6, 40)
    [event] = events(tenant_acme, "group.member_capacity_changed")
    assert event.changes["details"] == {"person": "li.acme"}


def test_more_room_or_a_new_member_asks_for_waiting_work_to_be_handed_out_after_commit(
    admin_zhao, agent_li, in_acme, monkeypatch, django_capture_on_commit_callbacks
):
    from tickets import tasks

    asked: list[tuple] = []
    monkeypatch.setattr(tasks.hand_out_queued, "delay", lambda *args: asked.append(args))
    group = make_group(in_acme)
    admin = acting(admin_zhao)
    with django_capture_on_commit_callbacks() as waiting:
        groups.add_group_member(acting_agent=admin, group=group, user=agent_li)
        groups.set_member_capacity(
            acting_agent=admin, group=group, user=agent_li, chat_capacity=6, ticket_capacity=20
        )
        assert asked == []  # nothing leaves before the commit
    for callback in waiting:
        callback()
    assert asked == [(in_acme.pk, [group.pk]), (in_acme.pk, [group.pk])]
