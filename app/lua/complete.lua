-- complete.lua: record a lease's results; optionally release the rest and
-- lease the next batch, all in one atomic step.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 lease id, 2 worker ('' : the lease's own), 3 release rest (0|1), 4 reclaim limit,
--       5 next lease id ('' for none), 6 next max tasks, 7 n results,
--       8.. n triples: task id, ok (1|0), body (raw JSON result, or error text)
-- Returns {'missing'} | {'bad', id} (nothing changed) |
--         {'ok', accepted, duplicates, retried, dead, ignored, released, any, worker, next...}
--         where any is the lease's any-job flag, worker the name results were
--         recorded under, and next... is a lease reply of lease.lua, or nothing.
-- Rules: the first result for a task wins; a task already done counts as a
-- duplicate. A late success from a lease that lost the task is accepted while
-- the task is not done (it leaves whichever state it is in); a late failure
-- changes nothing (ignored), nor does a result for a task never handed out.
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
local lid, worker = ARGV[1], ARGV[2]
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  local id = tonumber(ARGV[8 + i * 3])
  if not id or id < 0 or id >= job.total or id ~= math.floor(id) then
    return {'bad', ARGV[8 + i * 3]}
  end
end

local raw = redis.call('HGET', K_LEASES, lid)
local mine, any = nil, 0
if raw then
  local lease = cjson.decode(raw)
  any = lease.any or 0
  mine = {}
  for _, id in ipairs(lease.t) do mine[tostring(id)] = true end
  if worker == '' then worker = lease.w end
end
if worker == '' then worker = 'unknown' end

local finished_at = string.format('%.3f', now / 1000)
local worker_json = cjson.encode(worker)
local function record(t, body)
  local attempt = tonumber(redis.call('HGET', K_TRIES, t)) or 1
  redis.call('HSET', K_RESULTS, t, '{"id":' .. t .. ',"attempt":' .. attempt .. ',"worker":' ..
             worker_json .. ',"ok":true,"result":' .. body .. ',"finished_at":' .. finished_at .. '}')
  redis.call('HDEL', K_TRIES, t)
  redis.call('HDEL', K_FAILS, t)
end

local accepted, duplicates, retried, dead, ignored, failed = 0, 0, 0, 0, 0, 0
for i = 0, n - 1 do
  local t = tostring(tonumber(ARGV[8 + i * 3]))
  local ok = ARGV[9 + i * 3] == '1'
  local body = ARGV[10 + i * 3]
  if redis.call('HEXISTS', K_RESULTS, t) == 1 then
    duplicates = duplicates + 1
  else
    local owner = redis.call('HGET', K_OWNER, t)
    if owner == lid then
      unown(t, lid, now)
      if ok then
        record(t, body)
        accepted = accepted + 1
      else
        failed = failed + 1
        if give_back(job, t, true, body, worker, now) == 'dead' then dead = dead + 1
        else retried = retried + 1 end
      end
    elseif ok and tonumber(t) < job.cursor and (mine == nil or mine[t]) then
      if owner then unown(t, owner, now)
      elseif redis.call('ZREM', K_PENDING, t) == 0 then redis.call('HDEL', K_DEAD, t) end
      record(t, body)
      accepted = accepted + 1
    else
      ignored = ignored + 1
    end
  end
end

local released = 0
if ARGV[3] == '1' then released = return_lease(job, lid, now, false) end
touch_worker(worker, now, accepted, failed, 0, 0, true)
count_done(accepted, now)
reclaim(job, now, tonumber(ARGV[4]))
maybe_complete(job, now)

local reply = {'ok', accepted, duplicates, retried, dead, ignored, released, any, worker}
if ARGV[5] ~= '' then
  for _, v in ipairs(do_lease(job, ARGV[5], worker, tonumber(ARGV[6]), any, now)) do
    reply[#reply + 1] = v
  end
end
return reply
