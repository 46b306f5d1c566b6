-- archive_take.lua: a batch of a job's outbox (lib.lua) for one drainer.
-- Entries some drainer took at least `min idle` ms ago and never acknowledged
-- (it died, or its MongoDB write failed) come first (XAUTOCLAIM), then new
-- ones (XREADGROUP), so a killed drainer's batch is taken over by another.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 consumer name, 2 most entries, 3 min idle ms
-- Returns {'missing'} (no job, or a job without an outbox) |
--         {'ok', state, finished_at, entries in the outbox (taken or not),
--          {entry id, {field, value, ...}}, ...}
if redis.call('EXISTS', K_META) == 0 or redis.call('EXISTS', K_OUTBOX) == 0 then
  return {'missing'}
end
local want = tonumber(ARGV[2])
local meta = redis.call('HMGET', K_META, 'state', 'finished_at')
local out = {'ok', meta[1], meta[2] or '', redis.call('XLEN', K_OUTBOX)}
local claimed = redis.call('XAUTOCLAIM', K_OUTBOX, 'archive', ARGV[1], ARGV[3], '0-0',
                           'COUNT', want)
for _, entry in ipairs(claimed[2]) do
  if entry[2] then out[#out + 1] = entry end  -- (a deleted entry comes back without fields)
end
local room = want - (#out - 4)
if room > 0 then
  local new = redis.call('XREADGROUP', 'GROUP', 'archive', ARGV[1], 'COUNT', room,
                         'STREAMS', K_OUTBOX, '>')
  if new then
    for _, entry in ipairs(new[1][2]) do out[#out + 1] = entry end
  end
end
return out
