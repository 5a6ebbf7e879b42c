-- Quotas (docs/users.md): a row's limits, as the [[users]] keys of the same
-- name hold them (quota_bytes as written, "10GiB"; NULL: no limit), and
-- what each user's tree holds, kept here so that every instance sharing the
-- database counts one usage. `scope` names the storage the usage was
-- counted in (the row's storage and storage_settings): a row moved to
-- another tree is counted again there.
ALTER TABLE aioftpd_users ADD COLUMN quota_bytes TEXT;
ALTER TABLE aioftpd_users ADD COLUMN quota_files BIGINT;
CREATE TABLE aioftpd_usage (
    login TEXT NOT NULL PRIMARY KEY,
    scope TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    files BIGINT NOT NULL
);
