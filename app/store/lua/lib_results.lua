-- lib_results.lua: what a finished task leaves behind — worker figures, the
-- throughput series, results and the done marker, attempts, completion, the
-- failure budget. Prepended after lib.lua (app/store/scripts.py LIBS).

-- Throughput over time (GET /jobs/<id>/series, and the rate and ETA of a
-- status): tasks done and attempts failed (reported or expired) per bucket,
-- at two resolutions: {field prefix, bucket ms, buckets kept} (1 h of 10 s
-- buckets, 7 days of 5 min ones). Fields '<p><bucket>d' / '<p><bucket>f';
-- '<p>' holds the newest bucket index, 't0' the first activity (ms). When a
-- bucket opens, those that fell out of the window are deleted, so the hash
-- never holds more than 2 * (360 + 2016) buckets.
local SERIES = {{'s', 10000, 360}, {'m', 300000, 2016}}

local function count_series(done, failed, now)
  if done == 0 and failed == 0 then return end
  redis.call('HSETNX', K_SERIES, 't0', now)
  for _, s in ipairs(SERIES) do
    local p, width, keep = s[1], s[2], s[3]
    local b = math.floor(now / width)
    local last = tonumber(redis.call('HGET', K_SERIES, p))
    if last ~= b then
      if last and last < b then
        local old = {}
        for t = math.max(last - keep + 1, 0), math.min(last, b - keep) do
          old[#old + 1] = fmt('%s%dd', p, t)
          old[#old + 1] = fmt('%s%df', p, t)
        end
        if #old > 0 then bulk('HDEL', K_SERIES, old) end
      end
      redis.call('HSET', K_SERIES, p, fmt('%d', math.max(b, last or b)))
    end
    if done > 0 then redis.call('HINCRBY', K_SERIES, fmt('%s%dd', p, b), done) end
    if failed > 0 then redis.call('HINCRBY', K_SERIES, fmt('%s%df', p, b), failed) end
  end
end

-- Per-worker figures: d done, f failed, x expired, s last seen (ms),
-- r rate (tasks/s), rt when r was last updated. Leases held are counted from
-- the lease records when asked, so leasing never writes here.
local function touch_worker(name, now, done, failed, expired, seen)
  local raw = redis.call('HGET', K_WORKERS, name)
  local w
  if raw then w = cjson.decode(raw) else w = {d = 0, f = 0, x = 0, s = now, r = 0, rt = now} end
  w.d = w.d + done
  w.f = w.f + failed
  w.x = w.x + expired
  if done > 0 then
    w.r = decayed(w.r, w.rt, now) + done * 1000 / RATE_WINDOW_MS
    w.rt = now
  end
  if seen then w.s = now end
  redis.call('HSET', K_WORKERS, name, cjson.encode(w))
  -- Every done and failed task of a job passes here: the job's series too.
  count_series(done, failed + expired, now)
end

-- ---- The outbox (archive and result hook; app/store/keys.py, docs/contract.md §6).
-- A job made while the archive was configured (outbox 1) hands its accepted
-- results and failed attempts to drainers through the `outbox` stream and
-- keeps no result in Redis: "is it done?" is the `done` bitmap and the count
-- is meta ndone. With only a result hook (outbox 2) results stay in
-- `results` as without one, and go to the stream as well. Outbox 0: as
-- before the archive existed.
local OUTBOX_ARCHIVE = 1

local function done_count(job)
  if job.outbox == OUTBOX_ARCHIVE then return tonumber(redis.call('HGET', K_META, 'ndone')) or 0 end
  return redis.call('HLEN', K_RESULTS)
end

local function is_done(job, t)
  if job.outbox == OUTBOX_ARCHIVE then return redis.call('GETBIT', K_DONE, t) == 1 end
  return redis.call('HEXISTS', K_RESULTS, t) == 1
end

-- Record accepted results, lines = {id1, line1, id2, line2, ...}: one
-- stream entry per call, not one per task.
local function store_results(job, lines)
  if #lines == 0 then return end
  if job.outbox ~= OUTBOX_ARCHIVE then bulk('HSET', K_RESULTS, lines) end
  if job.outbox == 0 then return end
  local text = {}
  for i = 2, #lines, 2 do text[#text + 1] = lines[i] end
  if job.outbox == OUTBOX_ARCHIVE then
    for i = 1, #lines, 2 do redis.call('SETBIT', K_DONE, lines[i], 1) end
    redis.call('HINCRBY', K_META, 'ndone', #text)
  end
  redis.call('XADD', K_OUTBOX, '*', 'n', #text, 'r', table.concat(text, '\n'))
end

-- One failed or expired attempt of task t, for the archive's `attempts`
-- (called before the task is handed out again, so `tries` is its attempt).
local function note_attempt(job, t, err, worker, now, dead)
  if job.outbox ~= OUTBOX_ARCHIVE then return end
  local attempt = tonumber(redis.call('HGET', K_TRIES, t)) or 1
  redis.call('XADD', K_OUTBOX, '*', 'a', cjson.encode({task = tonumber(t), attempt = attempt,
      worker = worker, error = err, at = now / 1000, dead = dead}))
end

-- The attempts a remembered lease's tasks ran as (keys.py `gone_tries`):
-- "id:attempt,..." for those handed out more than once (absent: 1), so a
-- late result keeps its own attempt. Written beside `gone` (remember).
local function gone_attempts(lid)
  local map = {}
  for t, k in string.gmatch(redis.call('HGET', K_GONE_TRIES, lid) or '', '(%d+):(%d+)') do
    map[t] = k
  end
  return map
end

local function remember_attempts(lid, ids)
  if #ids == 0 then return end
  local tries, parts = redis.call('HMGET', K_TRIES, unpack(ids)), {}
  for i, t in ipairs(ids) do
    if tries[i] then parts[#parts + 1] = t .. ':' .. tries[i] end
  end
  if #parts > 0 then redis.call('HSET', K_GONE_TRIES, lid, table.concat(parts, ',')) end
end
-- ---- (end of the outbox)

-- A job completes once it is sealed and every task is done or dead.
local function maybe_complete(job, now)
  if job.state == 'completed' then return true end
  if (job.state == 'running' or job.state == 'paused') and job.sealed
      and done_count(job) + redis.call('HLEN', K_DEAD) == job.total then
    redis.call('HSET', K_META, 'state', 'completed', 'finished_at', now)
    job.state = 'completed'
    return true
  end
  return false
end

-- The failure budget (docs/contract.md §7, like Kubernetes' maxFailedIndexes): a
-- job with more than max_dead dead tasks fails at once. It keeps its counts
-- and hands out nothing more; retry_dead.lua revives it.
local function spend_budget(job, now)
  if job.max_dead and (job.state == 'running' or job.state == 'paused')
      and redis.call('HLEN', K_DEAD) > job.max_dead then
    redis.call('HSET', K_META, 'state', 'failed', 'finished_at', now)
    job.state = 'failed'
  end
end

-- A revived job (retry_dead.lua) that finishes again owes its webhook a new
-- event: wh_seq numbers the finishes, so each has its own event id.
local function rearm_webhook()
  if redis.call('HEXISTS', K_META, 'wh_state') == 0 then return end
  redis.call('HSET', K_META, 'wh_state', 'pending', 'wh_attempts', 0, 'wh_error', '')
  redis.call('HINCRBY', K_META, 'wh_seq', 1)
end
