"""A ClickHouse server through clickhouse-connect: client and error mapping."""
