"""Recipes: a zoo's YAML files, validated against the JSON Schema, defaults filled, cached.

``load`` reads and validates one recipe (``yaml`` parses it with positions, ``checks`` adds the
rules a schema cannot say, ``schema_errors`` words every error); ``cache`` serves a whole zoo
from a stat-keyed cache; ``stages`` picks the part of a recipe each build stage reads;
``schemadoc`` writes docs/recipe-reference.md from the schema.
"""
