-- The API and the read models keep times to the millisecond. Recording them so keeps
-- every copy equal: MySQL 8 rounds extra digits where MariaDB truncates them.
ALTER TABLE events
    ALTER COLUMN recorded_at SET DEFAULT date_trunc('milliseconds', clock_timestamp());
