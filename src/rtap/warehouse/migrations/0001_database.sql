-- The rtap database. `{db}` is replaced by the configured database name (RTAP_CLICKHOUSE_DATABASE).
CREATE DATABASE IF NOT EXISTS {db};
