-- Batch creation, step 3 of 3: the counters and parameters make the batch exist, in one step,
-- and it joins the index of batches (which drops batches past their TTL). This submission now
-- holds the lease on sending its messages (claim_sending.lua), and the batch leaves the batches
-- being created for the batches being sent (until StatusStore.mark_submitted).
-- KEYS: batch, its image list, its rate buckets, the batches index, the tenant's batches index,
-- the tenant's counters (its outstanding images grow by the batch's total, its active batches by
-- one), the four phase sets (the batch starts queued; the sets are trimmed with the index), the
-- batches being created, the batches being sent.
-- ARGV: token, now, ttl, batch id, total, the tenant's outstanding-images limit (0: none), then
-- parameter field/value pairs... Returns 1, 0 when the claim was lost, or -1 when the batch
-- would take the tenant past its limit: then the half-written batch's record is dropped (the check
-- and the count are one step, so racing submissions cannot both pass the limit) and its image
-- records are left to StatusStore.drop_half_created.
if redis.call('HGET', KEYS[1], 'creating') ~= ARGV[1] then return 0 end
local limit = tonumber(ARGV[6])
if limit > 0 and n(redis.call('HGET', KEYS[6], 'outstanding')) + tonumber(ARGV[5]) > limit then
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('HDEL', KEYS[1], 'creating')
local total = ARGV[5]
redis.call('HSET', KEYS[1], 'total', total, 'queued', total, 'running', 0, 'done', 0,
  'failed', 0, 'cancelled', 0, 'sending_at', ARGV[2])
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
keep_batch(KEYS[1], KEYS[2], KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[6], 'outstanding', total)
redis.call('HINCRBY', KEYS[6], 'active', 1)
redis.call('ZREM', KEYS[11], ARGV[4])
redis.call('ZADD', KEYS[12], ARGV[2], ARGV[4])
local phases = phase_keys(7)
for _, phase in ipairs(PHASES) do
  redis.call('ZREMRANGEBYSCORE', phases[phase], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
end
redis.call('ZADD', phases.queued, ARGV[2], ARGV[4])
return 1
