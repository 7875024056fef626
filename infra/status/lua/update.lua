-- update: set fields of a record only while it exists, so that a late write (a stage, the
-- submitted mark) never brings back an expired record as a fragment without a TTL.
-- KEYS: the record. ARGV: field, value pairs. Returns 1 when written.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
