-- The views' ids compare with utf8mb4_general_ci, a collation of simple per-character
-- rules, not with utf8mb4_unicode_ci (the tables' default), which weighs each character
-- by the Unicode Collation Algorithm.
--
-- Every id is a UUID as its aggregate writes it (lowercase hex and dashes), so the two
-- collations agree on equality and order; only the cost differs. A projector's batch
-- locks, loads and writes hundreds of rows by id, and during a burst of commands 30 % of
-- MariaDB's CPU samples were the Unicode collation's code, under `Field_string::cmp`
-- (docs/PERFORMANCE.md).
--
-- Not a binary collation (utf8mb4_bin, ascii_bin), though faster still: sqlx 0.8 refuses
-- to decode a column with a binary collation into a String. Not the ascii character set:
-- a damaged event naming an id outside it would fail every batch that carried it. The
-- character set stays utf8mb4, so what can be stored is what could be stored before.
--
-- Every id column changes together: a join compares ids of two tables (a post's author
-- with the accounts).

ALTER TABLE accounts_view
    MODIFY account_id CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL;

ALTER TABLE categories_view
    MODIFY category_id CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL;

ALTER TABLE posts_view
    MODIFY post_id     CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL,
    MODIFY category_id CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL,
    MODIFY author_id   CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL;

ALTER TABLE comments_view
    MODIFY comment_id CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL,
    MODIFY post_id    CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL,
    MODIFY author_id  CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL;
