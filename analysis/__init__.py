"""Statistics, tables and figures computed from recorded runs."""
