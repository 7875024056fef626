-- Batch creation, step 1 of 3: claim the batch id for this submission (token).
-- A batch that exists (it has a total) is left alone: returns 0. Otherwise the id is new, or a
-- half-written batch whose submission stopped (or is still writing: it loses the claim and its
-- next step fails): what it wrote is dropped and this submission starts again.
-- KEYS: batch, its image list. ARGV: token, now, ttl. Returns 1 when claimed.
if redis.call('HEXISTS', KEYS[1], 'total') == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'creating', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
