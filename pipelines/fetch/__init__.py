"""Fetching a recipe's files: ``cache`` (the content-addressed download cache, mirrors, checks of
what was fetched) over ``http`` (one pinned HTTP(S) download, resumable, size-capped)."""
