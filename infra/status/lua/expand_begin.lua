-- expand_begin: a batch whose inputs are listed in the background (a prefix or a manifest) exists
-- from the request on, expanding, with no images yet: the request is answered at once and the
-- batch shows in every listing. It joins the indexes like a batch made whole (create_end.lua),
-- and the batches being expanded, whose entries the expander renews as it goes (the maintenance
-- sweep sends a stalled expansion to an expander again).
-- KEYS: batch, its image list, its rate buckets, the batches index, the tenant's batches index,
-- the tenant's counters, the four phase sets, the batches being expanded.
-- ARGV: now, ttl, batch id, digest, then field/value pairs (parameters, output, source...).
-- Returns {1, ''} when made, or {0, the digest it has} when the id is taken (made, or being
-- made by a submission of URIs).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'digest') or ''}
end
local now, ttl = ARGV[1], ARGV[2]
redis.call('HSET', KEYS[1], 'created_at', now, 'digest', ARGV[4], 'total', 0, 'queued', 0,
  'running', 0, 'done', 0, 'failed', 0, 'cancelled', 0, 'sent', 0, 'expanding', 1,
  'expanding_at', 0)
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
keep_batch(KEYS[1], KEYS[2], KEYS[3], ttl)
local cutoff = tonumber(now) - tonumber(ttl)
for _, index in ipairs({KEYS[4], KEYS[5]}) do
  redis.call('ZADD', index, now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', cutoff)
end
redis.call('HINCRBY', KEYS[6], 'active', 1)
local phases = phase_keys(7)
for _, phase in ipairs(PHASES) do
  redis.call('ZREMRANGEBYSCORE', phases[phase], '-inf', cutoff)
end
redis.call('ZADD', phases.queued, now, ARGV[3])
redis.call('ZADD', KEYS[11], now, ARGV[3])
return {1, ''}
