-- expand_end: the batch's inputs are all found (or the expansion failed: an error). It stops
-- expanding; outstanding images reserved but not found are given back; every message is sent.
-- A failed batch keeps its reason; one that has images already is cancelled as a whole: its
-- queued images are moved by StatusStore.cancel after this step sets the cancel flag. The batch may be finished now
-- (all its images final already, or none): then as in any transition (common.lua).
-- KEYS: batch, its image list, its rate buckets, the tenant's counters, the four phase sets, the
-- due webhooks, the batches being expanded. ARGV: token, now, ttl, batch id, error ('' if none).
-- Returns {1, completed, 1 when its queued images are to be cancelled}, or {0, 0, 0} when the
-- caller is not the batch's expander.
if redis.call('HGET', KEYS[1], 'expander') ~= ARGV[1] then return {0, 0, 0} end
local b = redis.call('HMGET', KEYS[1], 'counted', 'total')
local unfound = n(b[1]) - n(b[2])
if b[1] and unfound > 0 then redis.call('HINCRBY', KEYS[4], 'outstanding', -unfound) end
redis.call('HDEL', KEYS[1], 'expanding', 'expander')
redis.call('HSET', KEYS[1], 'submitted_at', ARGV[2], 'sent', n(b[2]))
redis.call('ZREM', KEYS[10], ARGV[4])
local phases = phase_keys(5)
local cancelling = 0
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[5])
  if n(b[2]) > 0 then
    cancelling = 1
    if redis.call('HSETNX', KEYS[1], 'cancelled_at', ARGV[2]) == 1 then
      set_phase(phases, KEYS[1], ARGV[4], 'cancelled')
    end
  end
end
keep_batch(KEYS[1], KEYS[2], KEYS[3], ARGV[3])
return {1, batch_completed(KEYS[1], ARGV[2], phases, ARGV[4], KEYS[4], KEYS[9]), cancelling}
