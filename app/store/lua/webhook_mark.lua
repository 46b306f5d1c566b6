-- webhook_mark.lua: record one delivery attempt of a job's finish webhook.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 the finish number (wh_seq) the attempt was for, 2 new state
--       (delivered|failing|abandoned), 3 error text ('' for none)
-- Returns {'missing'} | {'stale'} (the job was revived since: its new
--         finish owes a new event; nothing changed) | {'ok', attempts}
if redis.call('EXISTS', K_META) == 0 then return {'missing'} end
if redis.call('HGET', K_META, 'wh_seq') ~= ARGV[1] then return {'stale'} end
local attempts = redis.call('HINCRBY', K_META, 'wh_attempts', 1)
redis.call('HSET', K_META, 'wh_state', ARGV[2], 'wh_error', ARGV[3])
return {'ok', attempts}
