"""The Unassigned view's own index (tickets.inbox): unsolved tickets nobody holds, newest
activity first. Without it PostgreSQL reads every unassigned unsolved ticket of the merchant and
sorts them for one page (10 ms at a million tickets, growing with the backlog); with it a page is
the first rows of one index range. PostgreSQL only, like 0010."""

from __future__ import annotations

from typing import Any

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS ticket_inbox_unassigned_idx ON tickets_ticket "
    "(tenant_id, updated_at DESC, id DESC) "
    "WHERE ignored_at IS NULL AND assignee_id IS NULL "
    "AND status IN ('new', 'open', 'pending', 'on_hold')"
)
DROP = "DROP INDEX IF EXISTS ticket_inbox_unassigned_idx"


def _run(statement: str) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("tickets", "0010_search_indexes")]
    operations = [migrations.RunPython(_run(CREATE), _run(DROP), elidable=False)]
