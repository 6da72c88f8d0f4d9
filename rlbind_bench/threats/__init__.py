"""Threat models: clean, PGD, AutoAttack, natural corruptions; specs in attacks/*.yaml."""
