"""Retrieval under attack for bound encoders: text->X, X->text and X->Y between two non-text modalities.

spec (datasets.yaml `task: retrieval` entries), layouts (caption sets and the class-relevance demo set), metrics
(R@K, AP), attack (PGD on the query or the gallery side), embed, run (the grid and its outputs), tables.
"""
