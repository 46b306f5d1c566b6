-- delete.lua: remove a job and everything it holds.
-- KEYS: the job's keys (lib.lua)
-- ARGV: none
-- Returns {'missing'} | {'ok'}
-- UNLINK frees large hashes (results of a million tasks) off the main thread.
if redis.call('EXISTS', K_META) == 0 then return {'missing'} end
for i = 1, #KEYS do redis.call('UNLINK', KEYS[i]) end
return {'ok'}
