-- Shared by every transition script: transitions.py puts this file in front of each one.

-- The error text of an image skipped because its batch was cancelled.
local CANCELLED_REASON = 'cancelled before it started'

-- A missing counter reads as 0 (HMGET gives false for those).
local function n(value) return tonumber(value) or 0 end

-- Returns 1 when this transition finished the batch (every image final) and the batch has a
-- webhook: finished_at is set once and the webhook marked pending, so the caller sends it once.
local function complete(batch, now)
  local b = redis.call('HMGET', batch, 'total', 'done', 'failed', 'cancelled')
  if n(b[2]) + n(b[3]) + n(b[4]) ~= n(b[1]) then return 0 end
  if redis.call('HSETNX', batch, 'finished_at', now) == 0 then return 0 end
  if redis.call('HEXISTS', batch, 'webhook_url') == 0 then return 0 end
  redis.call('HSET', batch, 'webhook_status', 'pending')
  return 1
end
