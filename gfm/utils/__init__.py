"""Small shared utilities (logging setup, seeding, atomic writes)."""
