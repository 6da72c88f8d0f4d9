"""Dataset readers and builders."""
