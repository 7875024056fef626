-- Batch creation, step 2 of 3 (once per chunk): queued image records and their ids appended
-- to the batch's image list, while the claim is still this submission's. The image records and
-- the list get the status TTL; the batch keeps the short claim TTL until step 3, so a submission
-- that dies leaves nothing that blocks its batch id for long, and the list names the records
-- the maintenance sweep drops. No deliveries field yet: a missing
-- counter reads as 0 (every byte of a record counts a million times over).
-- KEYS: batch, its image list, then image keys... ARGV: token, ttl, claim ttl, then id, input
-- pairs... (ARGV[2i], ARGV[2i + 1] belong to KEYS[i + 2]). Returns 0 when the claim was lost.
if redis.call('HGET', KEYS[1], 'creating') ~= ARGV[1] then return 0 end
for i = 3, #KEYS do
  local id, input = ARGV[2 * i - 2], ARGV[2 * i - 1]
  redis.call('HSET', KEYS[i], 'state', 'queued', 'input', input)
  redis.call('EXPIRE', KEYS[i], ARGV[2])
  redis.call('RPUSH', KEYS[2], id)
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
