"""`mcode cloud ...`: the command line (main.py), `db` (schema migrations) and `rules`."""
