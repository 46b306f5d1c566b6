-- status.lua: a job's status after reclaiming its expired leases.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 reclaim limit
-- Returns {'missing'} | {'ok', now ms, pending, leased, done, dead, meta field, value, ...}
-- Counts are derived from the structures themselves, never kept as separate
-- counters, so they cannot drift: pending = never handed out + handed back.
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
reclaim(job, now, tonumber(ARGV[1]))
maybe_complete(job, now)
-- Leased: what the live leases still hold (span leases have no owner fields).
local leased = 0
for _, v in ipairs(redis.call('HVALS', K_LEFT)) do leased = leased + tonumber(v) end
local reply = {'ok', now,
  job.total - job.cursor + redis.call('ZCARD', K_PENDING),
  leased, done_count(job), redis.call('HLEN', K_DEAD)}
for _, v in ipairs(redis.call('HGETALL', K_META)) do reply[#reply + 1] = v end
return reply
