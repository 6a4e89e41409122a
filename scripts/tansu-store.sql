-- Repairs to the SQLite store of the local Tansu 0.6.0 broker, applied by
-- scripts/services.sh each time it brings the broker up (idempotent). Why each one is
-- needed, and what was measured, is in docs/BROKER.md.

-- Every fetched record's headers are read by (topition, offset_id); without an index each
-- read scans every header ever stored, so the broker slows with every message kept.
CREATE INDEX IF NOT EXISTS board_header_by_record ON header (topition, offset_id);

-- The partition's watermarks are read on every produce and every fetch.
CREATE INDEX IF NOT EXISTS board_watermark_by_topition ON watermark (topition);

-- Deleting one topic runs `DELETE FROM topic WHERE topic.cluster IN (…)`, which matches
-- every topic of the cluster, and the cascade takes their partitions and records with
-- them. The broker removes the named topic's partitions first, so a topic that still has
-- partitions is never the one being deleted: keep it.
CREATE TRIGGER IF NOT EXISTS board_delete_only_the_named_topic
BEFORE DELETE ON topic
WHEN EXISTS (SELECT 1 FROM topition WHERE topition.topic = OLD.id)
BEGIN
    SELECT RAISE(IGNORE);
END;
