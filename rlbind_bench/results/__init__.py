"""Result tables: schema, atomic storage, statistics."""
