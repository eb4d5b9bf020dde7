"""What routing reads: groups with their skills, hours and members' capacity, agents' presence,
and the merchant's service-level targets. The rules live in tickets/assignment.py,
tickets/presence.py, tickets/business_hours.py and tickets/service_levels.py."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from helpdesk.tenancy import TenantOwned


class RoutingStrategy(models.TextChoices):
    ROUND_ROBIN = "round_robin", _("Round robin: in turn")
    LEAST_LOADED = "least_loaded", _("Least loaded: whoever has the least work")


def no_hours() -> list[list[list[str]]]:
    """A week with no opening hours: Monday first, each day a list of ["09:00", "18:00"]."""
    return [[] for _day in range(7)]


class Group(TenantOwned):
    """A team tickets are routed to (e.g. "Pre-sales", "After-sales 售后")."""

    name = models.CharField(max_length=100)
    # New tickets nobody routed elsewhere land in the default group.
    is_default = models.BooleanField(default=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="GroupMember", related_name="helpdesk_groups"
    )
    strategy = models.CharField(
        max_length=16, choices=RoutingStrategy.choices, default=RoutingStrategy.LEAST_LOADED
    )
    # A returning customer goes back to the agent who last replied to them, if they have room.
    sticky = models.BooleanField(default=True)
    # Skills: a ticket matches a group when, for each list that is not empty, the ticket's
    # language (prefix: "zh" covers "zh-hans"), channel or product category is in it.
    languages = models.JSONField(default=list, blank=True)
    channels = models.JSONField(default=list, blank=True)
    categories = models.JSONField(default=list, blank=True)
    # A persona group ("friendly", "concise", "expert") takes only customers who chose it.
    persona = models.SlugField(max_length=40, blank=True)
    persona_description = models.CharField(max_length=200, blank=True)
    # Open around the clock, or in ``weekly_hours`` (the merchant's time zone) outside holidays.
    always_open = models.BooleanField(default=True)
    weekly_hours = models.JSONField(default=no_hours, blank=True)
    # Sent on the customer's channel when they write while the group is closed; empty: default.
    out_of_hours_reply = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="group_unique_name"),
            models.UniqueConstraint(
                fields=["tenant", "persona"], condition=~Q(persona=""), name="group_unique_persona"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class GroupMember(TenantOwned):
    group = models.ForeignKey(Group, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    # How much work routing gives this agent at once: live conversations (chat, WeChat, phone,
    # API) and other open tickets (mail, web forms), counted across all their groups.
    chat_capacity = models.PositiveSmallIntegerField(default=3)
    ticket_capacity = models.PositiveSmallIntegerField(default=20)
    # Round robin gives the next ticket to whoever of the group had one longest ago.
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="groupmember_unique"),
        ]


class GroupHoliday(TenantOwned):
    """A day the group is closed all day, in the merchant's time zone."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["group", "date"], name="groupholiday_unique_date"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class AgentPresence(TenantOwned):
    """Whether an agent can take work now. Online agents get new conversations; away agents keep
    theirs; offline agents' live conversations go back to the queue.

    The row is also the agent's seat lock: routing locks it while counting their work, so two
    arrivals can never both take an agent's last free place.
    """

    class Status(models.TextChoices):
        ONLINE = "online", _("Online")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presences"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OFFLINE)
    # What the agent chose (online or away); a heartbeat that stops moves ``status`` away from it.
    chosen_status = models.CharField(max_length=8, choices=Status.choices, default=Status.ONLINE)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="agentpresence_unique_user"),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="presence_status_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.status}"


class ServiceTarget(TenantOwned):
    """How soon the merchant promises to answer and to resolve a ticket of one priority,
    counted in the ticket's group's business hours."""

    priority = models.CharField(max_length=16)  # Ticket.Priority
    first_response_minutes = models.PositiveIntegerField(null=True, blank=True)
    resolution_minutes = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["priority"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "priority"], name="servicetarget_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.priority}: {self.first_response_minutes}/{self.resolution_minutes} min"
