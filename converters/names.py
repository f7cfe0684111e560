"""Unique value names for graph builders."""

from __future__ import annotations


def unique_name(hint: str, used: set[str]) -> str:
    """``hint``, or ``hint_1``, ``hint_2``, ... — the first not in ``used``; recorded in it."""
    name, k = hint, 0
    while name in used:
        k += 1
        name = f"{hint}_{k}"
    used.add(name)
    return name
