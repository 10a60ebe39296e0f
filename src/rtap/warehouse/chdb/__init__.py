"""Embedded ClickHouse (chDB): client and engine (client.py), data-directory ownership, error mapping."""
