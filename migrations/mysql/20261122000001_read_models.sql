-- Read models, kept by the projectors from the events on Kafka.
--
-- Each row carries `version`, the sequence number of the last event of its own aggregate
-- applied to it. An event is applied only if its sequence is higher, so redelivered
-- events change nothing. A row may exist before its creating event arrives (events of
-- different aggregates travel on different partitions): a post's comment can be counted
-- before the post itself is projected. Such a row has `created_at` NULL and is not shown.
--
-- Keep this SQL to what both MySQL 8 and MariaDB 10.11 accept.

CREATE TABLE accounts_view
(
    account_id CHAR(36)    NOT NULL PRIMARY KEY,
    nickname   VARCHAR(20) NULL,
    version    BIGINT      NOT NULL DEFAULT 0
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE categories_view
(
    category_id CHAR(36)     NOT NULL PRIMARY KEY,
    name        VARCHAR(50)  NULL,
    description VARCHAR(500) NULL,
    post_count  INT          NOT NULL DEFAULT 0,
    created_at  DATETIME(3)  NULL,
    version     BIGINT       NOT NULL DEFAULT 0
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- Posts list newest first by id: ids are UUIDv7, so id order is creation order, and
-- (category_id, deleted, post_id) serves each page with one index range, however deep.
CREATE TABLE posts_view
(
    post_id       CHAR(36)     NOT NULL PRIMARY KEY,
    category_id   CHAR(36)     NULL,
    author_id     CHAR(36)     NULL,
    title         VARCHAR(200) NULL,
    content       MEDIUMTEXT   NULL,
    comment_count INT          NOT NULL DEFAULT 0,
    created_at    DATETIME(3)  NULL,
    updated_at    DATETIME(3)  NULL,
    deleted       BOOLEAN      NOT NULL DEFAULT FALSE,
    version       BIGINT       NOT NULL DEFAULT 0,
    KEY posts_by_category (category_id, deleted, post_id)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE comments_view
(
    comment_id CHAR(36)      NOT NULL PRIMARY KEY,
    post_id    CHAR(36)      NULL,
    author_id  CHAR(36)      NULL,
    content    VARCHAR(2000) NULL,
    created_at DATETIME(3)   NULL,
    deleted    BOOLEAN       NOT NULL DEFAULT FALSE,
    version    BIGINT        NOT NULL DEFAULT 0,
    KEY comments_by_post (post_id, deleted, comment_id)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- How far each projector has come on each partition, committed in the same transaction
-- as the rows it wrote; the Kafka offset is committed only after that.
CREATE TABLE projection_progress
(
    projector           VARCHAR(64)  NOT NULL,
    topic               VARCHAR(249) NOT NULL,
    partition_id        INT          NOT NULL,
    next_offset         BIGINT       NOT NULL,
    last_position       BIGINT       NOT NULL,
    last_recorded_at    DATETIME(3)  NOT NULL,
    updated_by          VARCHAR(128) NOT NULL,
    updated_at          DATETIME(3)  NOT NULL,
    PRIMARY KEY (projector, topic, partition_id)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
