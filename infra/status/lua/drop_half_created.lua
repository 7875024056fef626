-- drop_half_created: what a batch creation that stopped half-way wrote (its submission died, or
-- create_end refused it over a quota), one chunk of image records per call, once nobody has
-- claimed the batch id since the cutoff. A batch that was made whole after all only leaves the
-- batches being created.
-- KEYS: batch, its image list, the batches being created, then the chunk's image keys (the
-- first ids of the list). ARGV: batch id, cutoff (claims at or before it are stale).
-- Returns the ids left in the list (0: all dropped, or not being created), or -1 when the batch
-- was claimed after the cutoff.
local claimed = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not claimed then return 0 end
if tonumber(claimed) > tonumber(ARGV[2]) then return -1 end
if redis.call('HEXISTS', KEYS[1], 'total') == 1 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
if #KEYS > 3 then redis.call('LPOP', KEYS[2], #KEYS - 3) end
local left = redis.call('LLEN', KEYS[2])
if left == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return left
