-- The users table: one row per account, each column holding what the
-- [[users]] key of the same name holds, as written (docs/users.md). NULL is
-- "not set": the [[users]] default applies. The SQL is the same for SQLite
-- and PostgreSQL, so one set of migrations serves both.
--
-- storage names the backend ("fs", "memory", ...); storage_settings holds
-- that backend's keys as a TOML inline table (`{ base_path = "/srv/ftp/a" }`),
-- so a new backend needs new keys there, not a new column.
CREATE TABLE aioftpd_users (
    login TEXT NOT NULL PRIMARY KEY,
    password_hash TEXT NOT NULL,
    storage TEXT NOT NULL,
    storage_settings TEXT NOT NULL,
    home TEXT,
    permissions TEXT,
    tls_required TEXT,
    max_connections BIGINT,
    download_limit TEXT,
    upload_limit TEXT,
    download_limit_per_connection TEXT,
    upload_limit_per_connection TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    -- Seconds since the Unix epoch, UTC.
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
