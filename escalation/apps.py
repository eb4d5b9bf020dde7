from django.apps import AppConfig


class EscalationConfig(AppConfig):
    """Empowerment limits, remedies, escalations and the supervisor dashboard (next issues)."""

    name = "escalation"
