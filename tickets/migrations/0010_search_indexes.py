"""Indexes for the inbox and search (tickets.search, tickets.inbox), PostgreSQL only.

- pg_trgm (a trusted extension since PostgreSQL 13: the database owner, who migrates, may
  create it) and a trigram index on ``search_text`` for substrings of order, tracking and
  phone numbers;
- a GIN index on ``to_tsvector('simple', search_text)`` for words (Chinese segmented by jieba
  when the text is written);
- keyset indexes on (tenant, ..., updated_at DESC, id DESC) for the inbox views, partial on
  ``ignored_at IS NULL`` (spam stays out of every view but its own).

They are plain SQL, unknown to Django's model state, so SQLite (``make run``) skips them.
Filling ``search_text`` for existing tickets is ``manage.py rebuild_search``, not a data step
here: a migration must not rewrite a million rows in one transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS ticket_search_words_idx ON tickets_ticket "
    "USING gin (to_tsvector('simple'::regconfig, search_text))",
    "CREATE INDEX IF NOT EXISTS ticket_search_trgm_idx ON tickets_ticket "
    "USING gin (search_text gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS ticket_inbox_idx ON tickets_ticket "
    "(tenant_id, updated_at DESC, id DESC) WHERE ignored_at IS NULL",
    "CREATE INDEX IF NOT EXISTS ticket_inbox_assignee_idx ON tickets_ticket "
    "(tenant_id, assignee_id, updated_at DESC, id DESC) WHERE ignored_at IS NULL",
    "CREATE INDEX IF NOT EXISTS ticket_inbox_group_idx ON tickets_ticket "
    "(tenant_id, group_id, updated_at DESC, id DESC) WHERE ignored_at IS NULL",
    "CREATE INDEX IF NOT EXISTS ticket_inbox_status_idx ON tickets_ticket "
    "(tenant_id, status, updated_at DESC, id DESC) WHERE ignored_at IS NULL",
    # The "my groups" count: a group's unsolved tickets without reading the rest of the group.
    "CREATE INDEX IF NOT EXISTS ticket_inbox_group_status_idx ON tickets_ticket "
    "(tenant_id, group_id, status) WHERE ignored_at IS NULL",
    "CREATE INDEX IF NOT EXISTS ticket_spam_idx ON tickets_ticket "
    "(tenant_id, updated_at DESC, id DESC) WHERE ignored_at IS NOT NULL",
]
DROP = [
    "DROP INDEX IF EXISTS ticket_spam_idx",
    "DROP INDEX IF EXISTS ticket_inbox_group_status_idx",
    "DROP INDEX IF EXISTS ticket_inbox_status_idx",
    "DROP INDEX IF EXISTS ticket_inbox_group_idx",
    "DROP INDEX IF EXISTS ticket_inbox_assignee_idx",
    "DROP INDEX IF EXISTS ticket_inbox_idx",
    "DROP INDEX IF EXISTS ticket_search_trgm_idx",
    "DROP INDEX IF EXISTS ticket_search_words_idx",
]


def _run(statements: list[str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("tickets", "0009_workspace")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP), elidable=False)]
