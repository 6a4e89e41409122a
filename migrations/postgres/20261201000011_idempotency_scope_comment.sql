-- Anonymous keys are no longer scoped by the literal 'anonymous' (which let one client's
-- key block another's), but by the request itself. See 20261201000001 for why the first
-- migration's comment is corrected here and not in place.
COMMENT ON COLUMN idempotency_keys.scope IS
    'the acting account''s id, or for an anonymous request anonymous:<hex of request_fingerprint>';
