-- KEYS: batch, events, metrics, image keys... ARGV: now, ttl, maxlen, batch, image ids...
-- (ARGV[4 + i] is the id of KEYS[3 + i]). Sets the batch's cancel flag and moves the given images
-- that are still queued to cancelled. Returns {moved, completed}, or {-1, 0} for no such batch.
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then return {-1, 0} end
local now = ARGV[1]
redis.call('HSETNX', KEYS[1], 'cancelled_at', now)
local moved = 0
for i = 4, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'queued' then
    redis.call('HSET', KEYS[i], 'state', 'cancelled', 'stage', 'cancelled', 'finished_at', now,
      'error', CANCELLED_REASON)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'batch', ARGV[4],
      'image', ARGV[i + 1], 'state', 'cancelled')
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('HINCRBY', KEYS[1], 'queued', -moved)
  redis.call('HINCRBY', KEYS[1], 'cancelled', moved)
  redis.call('HINCRBY', KEYS[3], 'images:cancelled', moved)
end
local completed = complete(KEYS[1], now)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {moved, completed}
