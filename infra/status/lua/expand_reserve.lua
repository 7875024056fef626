-- expand_reserve: once the first pass has counted a batch's inputs, they are counted against the
-- tenant's outstanding images (the check and the count are one step, as in create_end.lua) and
-- the batch's queue is fixed. A resumed expansion finds its reservation made and goes on.
-- KEYS: batch, the tenant's counters. ARGV: token, count, the tenant's limit (0: none), queue.
-- Returns 1, 0 when the caller is not the batch's expander, or -1 over the limit.
if redis.call('HGET', KEYS[1], 'expander') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'counted') == 1 then return 1 end
local count, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
if limit > 0 and n(redis.call('HGET', KEYS[2], 'outstanding')) + count > limit then return -1 end
redis.call('HINCRBY', KEYS[2], 'outstanding', count)
redis.call('HSET', KEYS[1], 'counted', count, 'queue', ARGV[4])
return 1
