from django.apps import AppConfig


class EscalationConfig(AppConfig):
    """Empowerment limits, remedies, escalations and the supervisor dashboard."""

    name = "escalation"

    def ready(self) -> None:
        # The trigger tasks live outside tasks.py, which Celery's autodiscovery alone imports.
        from escalation import receivers, trigger_tasks  # noqa: F401

        receivers.connect()
