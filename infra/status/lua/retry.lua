-- retry (a batch's failed images): the given images that are failed go back to queued, as new
-- (no deliveries, no error, no times), counted in their record's `retried`; the counters move
-- with them (failed -> queued, and the tenant's outstanding images). A batch that had finished
-- runs again: finished_at goes, it is in the running phase and among the tenant's active batches,
-- and its webhook is waiting again (no longer due), so the transition that ends it anew calls
-- for the webhook again (batch_completed).
-- KEYS: batch, its image list, its rate buckets, events, metrics, the tenant's counters, the
-- four phase sets, the due webhooks, then image keys... ARGV: now, ttl, events maxlen, batch id,
-- the tenant's outstanding-images limit (0: none), then image ids... (ARGV[i - 6] names KEYS[i]).
-- Returns {moved, then id, input of each image moved...}; {-1} when there is no such batch, {-2} when it was
-- cancelled (start would cancel them again at once), {-3} when the images would take the tenant
-- past its limit (then nothing moves).
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then return {-1} end
if redis.call('HEXISTS', KEYS[1], 'cancelled_at') == 1 then return {-2} end
local failed = {}
for i = 12, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'failed' then failed[#failed + 1] = i end
end
if #failed == 0 then return {0} end
local limit = tonumber(ARGV[5])
if limit > 0 and n(redis.call('HGET', KEYS[6], 'outstanding')) + #failed > limit then
  return {-3}
end
local moved = {#failed}
for _, i in ipairs(failed) do
  local id = ARGV[i - 6]
  redis.call('HSET', KEYS[i], 'state', 'queued', 'stage', 'queued', 'error', '', 'deliveries', 0,
    'retries', 0)
  redis.call('HDEL', KEYS[i], 'started_at', 'finished_at', 'worker')
  redis.call('HINCRBY', KEYS[i], 'retried', 1)
  redis.call('EXPIRE', KEYS[i], ARGV[2])
  event(KEYS[4], ARGV[3], ARGV[4], id, 'queued')
  moved[#moved + 1] = id
  moved[#moved + 1] = redis.call('HGET', KEYS[i], 'input')
end
redis.call('HINCRBY', KEYS[1], 'failed', -#failed)
redis.call('HINCRBY', KEYS[1], 'queued', #failed)
redis.call('HINCRBY', KEYS[6], 'outstanding', #failed)
if redis.call('HDEL', KEYS[1], 'finished_at') == 1 then
  set_phase(phase_keys(7), KEYS[1], ARGV[4], 'running')
  redis.call('HINCRBY', KEYS[6], 'active', 1)
  redis.call('ZREM', KEYS[11], ARGV[4])
  redis.call('HDEL', KEYS[1], 'webhook_status', 'webhook_error')
  redis.call('HSET', KEYS[1], 'webhook_attempts', 0)
end
keep_batch(KEYS[1], KEYS[2], KEYS[3], ARGV[2])
return moved
