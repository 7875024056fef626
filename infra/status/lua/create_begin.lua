-- Batch creation, step 1 of 3: claim the batch id for this submission (token) and record the
-- digest of the request that makes it.
-- A batch that exists (it has a total) is left alone: returns {0, the digest it was made with}.
-- A batch another request (another digest) is writing now is left alone too: {2, its digest};
-- its claim lapses after the claim TTL if that submission died. A half-written batch of the same
-- request (its submission stopped, or is still writing: it loses the claim and its next step
-- fails) is dropped and this submission starts again: {1, ''}, as for a new id.
-- A claim joins the batches being created (batch id -> when claimed): the maintenance sweep drops
-- what a submission that died half-way wrote (``StatusStore.drop_half_created``).
-- KEYS: batch, its image list, the batches being created. ARGV: token, now, claim ttl, digest,
-- batch id.
if redis.call('HEXISTS', KEYS[1], 'total') == 1 then
  return {0, redis.call('HGET', KEYS[1], 'digest') or ''}
end
local writing = redis.call('HGET', KEYS[1], 'digest')
if writing and writing ~= ARGV[4] then return {2, writing} end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'creating', ARGV[1], 'digest', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
return {1, ''}
