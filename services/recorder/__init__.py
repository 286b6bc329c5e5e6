"""The recorder: persists sessions, tokens with their metrics, alerts, risk changes and summaries.

``service.py`` consumes the streams; ``store.py`` is the database (also read by the gateway), with
``rows.py`` (entries ↔ rows) and ``export.py`` (JSONL, CSV); ``models.py`` the tables; ``migrate.py``
and ``migrations/`` the schema; ``cli.py`` the command line.
"""
