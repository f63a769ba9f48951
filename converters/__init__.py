"""Converters: one Converter base and registry, one file per target."""
