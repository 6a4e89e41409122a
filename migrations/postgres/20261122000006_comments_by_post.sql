-- Finds a post's comments in the event store, for the write side's answers (PATCH returns
-- the post with its comment count). Both versions of CommentAdded keep post_id here.
CREATE INDEX events_comments_by_post ON events ((payload -> 'CommentAdded' ->> 'post_id'))
    WHERE event_type = 'CommentAdded';
