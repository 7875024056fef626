-- Who sends a created batch's messages: the submission that created it (create_end starts its
-- lease), or, once that sender has shown no progress for the lease, a resubmission of the same
-- request, which then sends what is still queued. So racing resubmissions never send twice,
-- and a sender that died is taken over.
-- KEYS: batch. ARGV: now, lease seconds. Returns 1 when the caller is now the sender.
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'submitted_at') == 1 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'sending_at') or '0')
if tonumber(ARGV[1]) - last < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'sending_at', ARGV[1])
return 1
