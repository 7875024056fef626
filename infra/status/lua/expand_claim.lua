-- expand_claim: who expands a batch. The caller (token) becomes its expander when the batch is
-- still expanding and no other expander has shown progress for the lease; an expander that
-- already holds it renews it. Progress moves the batch's entry among the batches being expanded,
-- so the maintenance sweep sees only stalled ones.
-- KEYS: batch, the batches being expanded. ARGV: token, now, lease seconds, batch id.
-- Returns 1 when the caller is the expander, 2 when it is but the batch was cancelled (it ends
-- the expansion with what it found), 0 otherwise.
if redis.call('HEXISTS', KEYS[1], 'expanding') == 0 then return 0 end
local holder = redis.call('HGET', KEYS[1], 'expander')
local last = tonumber(redis.call('HGET', KEYS[1], 'expanding_at') or '0')
if holder ~= ARGV[1] and tonumber(ARGV[2]) - last < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'expander', ARGV[1], 'expanding_at', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
if redis.call('HEXISTS', KEYS[1], 'cancelled_at') == 1 then return 2 end
return 1
