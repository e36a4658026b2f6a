"""A robot's knowledge files: passages, Russian lemmas, BM25 retrieval (issue 12)."""
