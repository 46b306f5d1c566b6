-- task.lua: everything stored about one task, for the task inspector (read only).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 task id (canonical decimal)
-- Returns {'missing'} | {'no_task'} (id outside the job) |
--   {'ok', state, tries, fails, item, result, dead, lease id, lease record, expires ms}
--   state: pending | leased | done | dead; tries: times handed out (0: never);
--   item (items jobs), result (its NDJSON line), dead (JSON) and the lease
--   fields are false when absent. A span lease is found through `spans`
--   without materializing it (this script writes nothing).
local job = load_job()
if not job then return {'missing'} end
local t = ARGV[1]
local id = tonumber(t)
if not id or id < 0 or id >= job.total then return {'no_task'} end
local tries = tonumber(redis.call('HGET', K_TRIES, t))
if not tries then if id < job.cursor then tries = 1 else tries = 0 end end
local fails = tonumber(redis.call('HGET', K_FAILS, t)) or 0
local item = false
if job.kind == 'items' then item = redis.call('HGET', K_ITEMS, t) end
local result = redis.call('HGET', K_RESULTS, t)
local dead = redis.call('HGET', K_DEAD, t)
local lid = redis.call('HGET', K_OWNER, t)
if not lid and id < job.cursor then
  local span = redis.call('ZREVRANGEBYSCORE', K_SPANS, t, '-inf', 'LIMIT', 0, 1)[1]
  if span then
    local lease = decode_lease(redis.call('HGET', K_LEASES, span))
    if lease.last and lease.last >= id then lid = span end
  end
end
local record, expires = false, false
if lid then
  record = redis.call('HGET', K_LEASES, lid)
  expires = redis.call('ZSCORE', K_DEADLINES, lid)
end
local state = 'pending'
-- (an archive job keeps no result in Redis: its `done` bitmap says it)
if result or is_done(job, t) then state = 'done'
elseif dead then state = 'dead'
elseif lid then state = 'leased' end
return {'ok', state, tries, fails, item, result or false, dead or false, lid or false, record,
        expires}
