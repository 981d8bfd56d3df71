"""Data: user folders, the built-in corpora and the preprocessing cache."""
