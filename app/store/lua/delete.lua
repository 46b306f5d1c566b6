-- delete.lua: remove a job and everything it holds.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 '1': only when nothing waits in its outbox (the archive must have
--       every result before the job leaves Redis), '0': whatever it holds
-- Returns {'missing'} | {'backlog', entries waiting} (nothing changed) | {'ok'}
-- UNLINK frees large hashes (results of a million tasks) off the main thread.
if redis.call('EXISTS', K_META) == 0 then return {'missing'} end
if ARGV[1] == '1' then
  local waiting = redis.call('XLEN', K_OUTBOX)
  if waiting > 0 then return {'backlog', waiting} end
end
for i = 1, #KEYS do redis.call('UNLINK', KEYS[i]) end
return {'ok'}
