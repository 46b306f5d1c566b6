-- archive_ack.lua: outbox entries are in the archive now: acknowledge them,
-- drop them from Redis and count the results they held.
-- KEYS: the job's keys (lib.lua)
-- ARGV: pairs of entry id, results the entry holds
-- Returns {'ok', results newly counted as archived, entries left in the outbox}
-- An entry two drainers both wrote (one took it over from the other) is
-- counted by whichever acknowledges it first, so `archived` stays exact.
local n, ids = 0, {}
for i = 1, #ARGV, 2 do
  if redis.call('XACK', K_OUTBOX, 'archive', ARGV[i]) == 1 then n = n + tonumber(ARGV[i + 1]) end
  ids[#ids + 1] = ARGV[i]
end
if #ids > 0 then bulk('XDEL', K_OUTBOX, ids) end
if n > 0 and redis.call('EXISTS', K_META) == 1 then redis.call('HINCRBY', K_META, 'archived', n) end
return {'ok', n, redis.call('XLEN', K_OUTBOX)}
