-- complete: running -> done, with the stage timings (JSON), the output URI, the matte's
-- confidence and review flag, and the timings' histogram increments added to the metrics.
-- ARGV after the shared ones: timings, output, confidence ('' when none), review ('1' or '0'),
-- then metric field/increment pairs. An image flagged for review adds one to the batch's
-- 'review' count, once: only a running image completes.
local c = image_call()
local state, refused = state_in(c, {'running'})
if not state then return refused end
for i = 11, #ARGV, 2 do redis.call('HINCRBYFLOAT', c.metrics, ARGV[i], ARGV[i + 1]) end
local fields = {'stage', 'done', 'error', '', 'timings', ARGV[7], 'output', ARGV[8]}
if ARGV[9] ~= '' then
  for _, value in ipairs({'confidence', ARGV[9], 'review', ARGV[10]}) do
    table.insert(fields, value)
  end
  if ARGV[10] == '1' then redis.call('HINCRBY', c.batch, 'review', 1) end
end
return {'done', move(c, 'running', 'done', fields)}
