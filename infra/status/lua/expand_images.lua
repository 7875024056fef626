-- expand_images: one chunk of an expanding batch's images, queued, appended to its image list;
-- its total and queued counts grow with them, and the expander's lease is renewed. Only its
-- expander writes.
-- KEYS: batch, its image list, its rate buckets, the batches being expanded, then image keys...
-- ARGV: token, now, ttl, batch id, then id, input pairs... (ARGV[2i - 5], ARGV[2i - 4] belong
-- to KEYS[i]). Returns 1, or 0 when the caller is not the batch's expander.
if redis.call('HGET', KEYS[1], 'expander') ~= ARGV[1] then return 0 end
for i = 5, #KEYS do
  redis.call('HSET', KEYS[i], 'state', 'queued', 'input', ARGV[2 * i - 4])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
  redis.call('RPUSH', KEYS[2], ARGV[2 * i - 5])
end
local added = #KEYS - 4
redis.call('HINCRBY', KEYS[1], 'total', added)
redis.call('HINCRBY', KEYS[1], 'queued', added)
redis.call('HSET', KEYS[1], 'expanding_at', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[4])
keep_batch(KEYS[1], KEYS[2], KEYS[3], ARGV[3])
return 1
