"""Values written as a paper writes them: prose, never Python or JSON. Shared by the methods
paragraph and the sentences each family and engine contributes to it."""

from __future__ import annotations

import math


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def spoken(value) -> str:
    """One value as a reader writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "unset"
    if isinstance(value, dict):
        return f"({pairs(value)})"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(spoken(v) for v in value) + "]"
    return str(value)


def pairs(mapping: dict) -> str:
    return ", ".join(f"{k} = {spoken(v)}" for k, v in sorted(mapping.items()))


def with_settings(mapping: dict, empty: str = "its default settings") -> str:
    return pairs(mapping) if mapping else empty


def and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def model_sentence(model: dict, described: str) -> str:
    """The methods' sentence on a model: what trains it, then its hyper-parameters."""
    hyper = model.get("hyper", {})
    return (f"The model {model['name']} ({described}) was trained with "
            + (f"hyper-parameters {pairs(hyper)}." if hyper else "its default hyper-parameters."))
