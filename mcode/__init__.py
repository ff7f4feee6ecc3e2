"""The `mcode` command: one entry point that fronts every tier."""
