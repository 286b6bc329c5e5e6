"""The alerter: turns ``uq:audits`` into alerts, risk-level changes and session summaries on ``uq:alerts``.

Modules: ``rules`` (the Rule interface and loading by dotted path), ``builtin`` (the four default
rules), ``declarative`` (rules from a YAML/JSON file), ``ruleset`` (which rules run), ``risk`` (the
session risk level), ``session`` (per-session state and its persistence), ``engine`` (pure processing:
order, cooldowns, risk, summary), ``service`` (consumers, cache, commits). See docs/alerts.md.
"""
