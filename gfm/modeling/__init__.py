"""The gfm transformer: configuration, model classes, attention patterns and backends.

Importing this package registers gfm with transformers' Auto classes.
"""
