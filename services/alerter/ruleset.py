"""Which rules run: the built-in classes, the user's Python classes and the declarative rules file."""

from __future__ import annotations

from services.alerter import profile
from services.alerter.declarative import load_rules_file
from services.alerter.errors import RuleLoadError, RulesFileError
from services.alerter.rules import Rule, load_rule
from services.alerter.settings import AlerterSettings


def load_rules(settings: AlerterSettings) -> list[Rule]:
    """Every rule named by the settings, in order: ``builtin_rules``, ``python_rules``, then ``rules_file``.

    Raises RuleLoadError / RulesFileError / ProfileError (all ConfigError) when one cannot be used, so
    the alerter stops at start with a message that says which and why (the calibration profiles the
    rules' relative thresholds read are checked here too).
    """
    profile.catalogue(settings.profiles_dir)
    rules: list[Rule] = [load_rule(path, settings) for path in [*settings.builtin_rules, *settings.python_rules]]
    origin = {
        rule.name: path for rule, path in zip(rules, [*settings.builtin_rules, *settings.python_rules], strict=True)
    }
    if len(origin) < len(rules):
        names = [r.name for r in rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        raise RuleLoadError(", ".join(twice), "two rule classes have the same name; give each rule its own name")
    if settings.rules_file:
        for rule in load_rules_file(settings.rules_file):
            if rule.name in origin:
                raise RulesFileError(
                    settings.rules_file, f"the name {rule.name} is already taken by {origin[rule.name]}", rule=rule.name
                )
            rules.append(rule)
    return rules
