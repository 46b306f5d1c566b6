-- lib.lua: functions shared by every per-job script. app/scripts.py puts this
-- file in front of each operation when it registers it, so each operation is
-- one atomic script while the rules live here once.
--
-- KEYS, for every per-job script, in app/keys.py JOB_KEYS order:
--   1 meta  2 pending  3 owner  4 tries  5 fails  6 leases  7 left
--   8 deadlines  9 items  10 results  11 dead  12 workers  13 appends  14 spans
--   15 gone  16 gone_at  17 done  18 outbox  19 gone_tries  20 backoff  21 shun
--   22 askers  23 born  24 copies  25 durations  26 tokens  27 fleet  28 series
--
-- Who holds a task. A lease made only of fresh range ids (the common case:
-- nothing handed back yet) is a *span lease*: its record names ids a..b and
-- it holds all of them implicitly, with no owner field per task, so leasing
-- n tasks writes one record, not n fields. The first time one of its tasks
-- leaves it early (a failure, a partial report, a late result from another
-- lease) it is *materialized*: owner fields are written for its tasks and its
-- record becomes a list, and from then on it is an ordinary lease. So a task
-- is held by lease L iff owner[t] = L, or t lies in the span of L (found
-- through `spans`, first id -> lease id; spans never overlap).
--
-- Time is Redis's own TIME (docs/contract.md §4.7): app hosts' clocks never decide
-- whether a lease is alive. Scripts are replicated by effects (Redis >= 5),
-- so reading TIME before writing is allowed.
local K_META, K_PENDING, K_OWNER, K_TRIES, K_FAILS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_LEASES, K_LEFT, K_DEADLINES, K_ITEMS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_RESULTS, K_DEAD, K_WORKERS, K_APPENDS = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_SPANS, K_GONE, K_GONE_AT = KEYS[14], KEYS[15], KEYS[16]
local K_DONE, K_OUTBOX, K_GONE_TRIES = KEYS[17], KEYS[18], KEYS[19]
local K_BACKOFF, K_SHUN, K_ASKERS, K_BORN, K_COPIES, K_DURATIONS, K_TOKENS =
  KEYS[20], KEYS[21], KEYS[22], KEYS[23], KEYS[24], KEYS[25], KEYS[26]
local K_FLEET, K_SERIES = KEYS[27], KEYS[28]

-- Rates are exponentially decayed counts over this window: each done task
-- adds 1/60 task/s, which fades with a one-minute time constant. O(1) memory
-- per worker, no buckets to prune.
local RATE_WINDOW_MS = 60000
-- unpack() has a stack limit; bulk writes go in slices of this many values
-- (even, so field/value pairs never split).
local CHUNK = 2000
-- An expired or released lease is remembered (its record, in `gone`) so that
-- a late result from it is accepted for the tasks it really held and for no
-- other (complete.lua): for a day, and at most this many leases per job
-- (the oldest forgotten first). A forgotten lease's late results are
-- ignored, which is the safe side. Each is one small hash field.
local GONE_MS = 86400000
local GONE_MAX = 100000
-- Integers become text with '%d': about 3x cheaper than tostring() or `..`,
-- which print every number with '%.14g' (~1.3 µs each here, measured).
local fmt = string.format

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The job's settings and state. max_dead nil: no failure budget;
-- backoff_ms 0: a failed task is leasable again at once.
local function load_job()
  local v = redis.call('HMGET', K_META, 'state', 'sealed', 'total', 'cursor', 'batch_size',
                       'lease_ms', 'max_attempts', 'kind', 'outbox', 'max_dead', 'backoff_ms',
                       'batching', 'speculate')
  if not v[1] then return nil end
  return {state = v[1], sealed = v[2] == '1', total = tonumber(v[3]), cursor = tonumber(v[4]),
          batch = tonumber(v[5]), lease_ms = tonumber(v[6]), max_attempts = tonumber(v[7]),
          kind = v[8], outbox = tonumber(v[9]) or 0, max_dead = tonumber(v[10]),
          backoff_ms = tonumber(v[11]) or 0, guided = v[12] == 'guided', speculate = v[13] == '1'}
end

-- Run a variadic command over a long flat argument list, CHUNK at a time.
local function bulk(cmd, key, args)
  for i = 1, #args, CHUNK do
    redis.call(cmd, key, unpack(args, i, math.min(i + CHUNK - 1, #args)))
  end
end

-- Appends id1, value, id2, value, ... to `out` (a new list if nil): the
-- field/value or score/member pairs of a bulk write. No value: the id itself.
local function interleave(ids, value, out)
  out = out or {}
  for _, t in ipairs(ids) do
    out[#out + 1] = t
    out[#out + 1] = value or t
  end
  return out
end

-- Stores ARGV[from..] as items first, first+1, ... (create, stage, append).
local function store_items(first, from)
  local fields = {}
  for i = from, #ARGV do
    fields[#fields + 1] = first + i - from
    fields[#fields + 1] = ARGV[i]
  end
  bulk('HSET', K_ITEMS, fields)
end

-- A lease record: "<flags>|<created ms>|<tasks>|<worker>", the worker last
-- because its name may hold '|'; <tasks> is "a-b" for a span lease, else
-- "id,id,...". Plain text: cheaper than cjson both ways. <flags>: 1 = leased
-- from "any job" (kept for `complete ... next`), + SPECULATIVE for a backup
-- copy of straggling tasks (see straggler copies below), which holds no task.
local SPECULATIVE = 2
local function encode_lease(any, created, tasks, worker)
  return fmt('%d|%d|', any, created) .. tasks .. '|' .. worker
end

-- {any, spec, created, w = worker, and first/last (span) or csv (list)}.
local function decode_lease(raw)
  local flags, created, tasks, worker = string.match(raw, '^(%d)|(%d+)|([%d,%-]*)|(.*)$')
  flags = tonumber(flags)
  local lease = {any = flags % SPECULATIVE, spec = flags >= SPECULATIVE,
                 created = tonumber(created), w = worker}
  local a, b = string.match(tasks, '^(%d+)%-(%d+)$')
  if a then lease.first, lease.last = tonumber(a), tonumber(b) else lease.csv = tasks end
  return lease
end

-- The ids (strings) a lease record names.
local function lease_ids(lease)
  local ids = {}
  if lease.first then
    for t = lease.first, lease.last do ids[#ids + 1] = fmt('%d', t) end
  else
    for t in string.gmatch(lease.csv, '%d+') do ids[#ids + 1] = t end
  end
  return ids
end

-- Turn span lease lid (every task still held: a span lease has lost none)
-- into an ordinary one. Returns its ids.
local function materialize(lid, lease)
  local ids = lease_ids(lease)
  bulk('HSET', K_OWNER, interleave(ids, lid))
  lease.first, lease.last, lease.csv = nil, nil, table.concat(ids, ',')
  redis.call('HSET', K_LEASES, lid, encode_lease(lease.any, lease.created, lease.csv, lease.w))
  redis.call('ZREM', K_SPANS, lid)
  return ids
end

-- The lease holding task t (a string id), or nil. A span lease found
-- holding it is materialized, so the caller can treat it like any other.
local function owner_of(t)
  local lid = redis.call('HGET', K_OWNER, t)
  if lid then return lid end
  lid = redis.call('ZREVRANGEBYSCORE', K_SPANS, t, '-inf', 'LIMIT', 0, 1)[1]
  if not lid then return nil end
  local lease = decode_lease(redis.call('HGET', K_LEASES, lid))
  if lease.last < tonumber(t) then return nil end
  materialize(lid, lease)
  return lid
end

local function decayed(rate, since, now)
  if not rate or not since then return 0 end
  return rate * math.exp(-(now - since) / RATE_WINDOW_MS)
end

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

local function count_done(n, now)
  if n == 0 then return end
  local v = redis.call('HMGET', K_META, 'rate', 'rate_t')
  local r = decayed(tonumber(v[1]), tonumber(v[2]), now) + n * 1000 / RATE_WINDOW_MS
  redis.call('HSET', K_META, 'rate', r, 'rate_t', now)
end

-- ---- The outbox (archive and result hook; app/store/keys.py, DESIGN.md §6).
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

-- Retry backoff (docs/contract.md §8): the n-th failure of task t waits
-- backoff_ms * 2^(n-1), at most BACKOFF_CAP_MS, less up to a fifth of it
-- spread by task and time (a batch that failed together does not come back
-- together; never more than the nominal delay, so a client can count on it).
local BACKOFF_CAP_MS = 3600000
local function backoff_until(job, t, n, now)
  local delay = math.min(BACKOFF_CAP_MS, job.backoff_ms * 2 ^ (n - 1))
  local spread = ((tonumber(t) * 7919 + now) % 1009) / 1009
  return now + math.floor(delay * (1 - 0.2 * spread))
end

-- Backed-off tasks whose time has come join pending (at most CHUNK a call).
local function promote_due(job, now)
  if job.backoff_ms <= 0 then return end
  local due = redis.call('ZRANGEBYSCORE', K_BACKOFF, '-inf', now, 'LIMIT', 0, CHUNK)
  if #due == 0 then return end
  bulk('ZADD', K_PENDING, interleave(due))
  bulk('ZREM', K_BACKOFF, due)
end

-- Take task t out of pending (leasable or backing off); false if it was not there.
local function take_pending(t)
  return redis.call('ZREM', K_PENDING, t) == 1 or redis.call('ZREM', K_BACKOFF, t) == 1
end

-- Forget a lease: its record, its count, its deadline (and its span).
local function close_lease(lid, span)
  redis.call('HDEL', K_LEASES, lid)
  redis.call('HDEL', K_LEFT, lid)
  redis.call('ZREM', K_DEADLINES, lid)
  if span then redis.call('ZREM', K_SPANS, lid) end
end

-- Task t leaves (ordinary) lease lid; the lease closes with its last task.
local function unown(t, lid)
  redis.call('HDEL', K_OWNER, t)
  if redis.call('HINCRBY', K_LEFT, lid, -1) <= 0 then close_lease(lid) end
end

-- An owner-less task goes back to pending, or to dead when this failure
-- (failed = true) uses up its attempts. Returns 'dead' or 'retried'.
-- `tries` holds a task's hand-outs beyond the first (absent: one).
-- A failed task remembers who failed it (`shun`, see lease_new) and, with
-- retry_backoff, waits in `backoff` before it is leasable again.
local function give_back(job, t, failed, err, worker, now)
  if failed then
    local fails = redis.call('HINCRBY', K_FAILS, t, 1)
    note_attempt(job, t, err, worker, now, fails >= job.max_attempts)  -- the archive's `attempts`
    if fails >= job.max_attempts then
      local tries = tonumber(redis.call('HGET', K_TRIES, t)) or 1
      redis.call('HSET', K_DEAD, t, cjson.encode({id = tonumber(t), attempts = tries, error = err,
                                                 worker = worker, at = now / 1000}))
      redis.call('HDEL', K_SHUN, t)
      spend_budget(job, now)
      return 'dead'
    end
    if worker then redis.call('HSET', K_SHUN, t, worker) end
    if job.backoff_ms > 0 then
      redis.call('ZADD', K_BACKOFF, backoff_until(job, t, fails, now), t)
      return 'retried'
    end
  end
  redis.call('ZADD', K_PENDING, t, t)
  return 'retried'
end

-- Remember lease lid (record raw) as it closes with tasks given back, and
-- forget a few of the oldest: past GONE_MS, or beyond GONE_MAX (each call
-- adds one and drops at least one once over, so the count stays bounded).
local function remember(lid, raw, now)
  redis.call('HSET', K_GONE, lid, raw)
  redis.call('ZADD', K_GONE_AT, now, lid)
  local old = redis.call('ZRANGEBYSCORE', K_GONE_AT, '-inf', now - GONE_MS, 'LIMIT', 0, 4)
  if #old == 0 and redis.call('ZCARD', K_GONE_AT) > GONE_MAX then
    old = redis.call('ZRANGE', K_GONE_AT, 0, 1)
  end
  if #old > 0 then
    redis.call('HDEL', K_GONE, unpack(old))
    redis.call('HDEL', K_GONE_TRIES, unpack(old))  -- (the outbox's provenance)
    redis.call('ZREM', K_GONE_AT, unpack(old))
  end
end

-- Give back every task lease lid still owns. failed: expiry counts as a
-- failed attempt, a release does not. Returns how many went back.
local function return_lease(job, lid, now, failed)
  local raw = redis.call('HGET', K_LEASES, lid)
  local n, span = 0, true
  if raw then
    local lease = decode_lease(raw)
    local why = failed and 'lease expired' or nil
    span = lease.first ~= nil
    local listed = {}  -- (a span lease's tasks are all first attempts)
    for _, t in ipairs(lease_ids(lease)) do
      if span or redis.call('HGET', K_OWNER, t) == lid then
        if not span then
          redis.call('HDEL', K_OWNER, t)
          listed[#listed + 1] = t
        end
        give_back(job, t, failed, why, lease.w, now)
        n = n + 1
      end
    end
    if failed and n > 0 then touch_worker(lease.w, now, 0, 0, n, false) end
    -- (a copy lease holds nothing, but its late success may still win)
    if n > 0 or lease.spec then
      remember(lid, raw, now)
      remember_attempts(lid, listed)  -- provenance of a late result (the outbox block)
    end
  end
  close_lease(lid, span)
  return n
end

-- Expire every lease whose deadline has passed (at most `limit` per call,
-- so no call holds Redis for long). This is how expired work comes back:
-- inside the scripts that lease and report, with no background process.
local function reclaim(job, now, limit)
  local due = redis.call('ZRANGEBYSCORE', K_DEADLINES, '-inf', now, 'LIMIT', 0, limit)
  for _, lid in ipairs(due) do return_lease(job, lid, now, true) end
  return #due
end

-- The reply for lease lid holding task ids `ids` (strings) with attempts
-- `tries`: {'ok', lid, expires ms, lease ms, n, id1..idn, attempt1..attemptn,
-- [payload1..payloadn for items jobs]}. Numbers go back as RESP integers:
-- cheaper for Redis than printing them into JSON here (measured).
local function lease_reply(job, lid, expires, ids, tries)
  local reply = {'ok', lid, expires, job.lease_ms, #ids}
  local n = #ids
  for i, t in ipairs(ids) do
    reply[5 + i] = tonumber(t)
    reply[5 + n + i] = tonumber(tries[i]) or 1
  end
  if job.kind == 'items' and n > 0 then
    local payloads = redis.call('HMGET', K_ITEMS, unpack(ids))
    for i = 1, n do reply[5 + 2 * n + i] = payloads[i] end
  end
  return reply
end

-- The reply for span lease first..last (first attempts): for a range job
-- {'span', lid, expires ms, lease ms, n, first}, which the app expands (two
-- numbers instead of 2n), for an items job an 'ok' reply with the payloads.
local function span_reply(job, lid, expires, first, last)
  if job.kind == 'items' then
    return lease_reply(job, lid, expires, lease_ids({first = first, last = last}), {})
  end
  return {'span', lid, expires, job.lease_ms, last - first + 1, first}
end

-- Straggler copies (docs/contract.md §8 `speculate`, MapReduce's backup tasks). In a
-- job that asks for them, a request that would get 'wait' because every
-- remaining task is leased may get copies of tasks whose lease has lived
-- more than SPEC_FACTOR times the job's median lease (its last
-- DURATIONS_KEPT leases closed by a complete). A copy lease is a lease
-- record flagged SPECULATIVE: it owns nothing (the original keeps its
-- tasks and counts), so whichever result comes first is accepted as a late
-- result (complete.lua) and the other is a duplicate. `born` indexes the
-- leases of such a job by creation (cleaned lazily as it is read), `copies`
-- names each copied task's copy lease (one live copy per task).
local SPEC_FACTOR, SPEC_MIN_SAMPLES, SPEC_SCAN, DURATIONS_KEPT = 3, 1, 200, 101

-- Remember how long a lease of a speculating job lived (it just closed).
local function note_duration(job, lease, now)
  if not job.speculate or lease.spec then return end
  redis.call('LPUSH', K_DURATIONS, now - lease.created)
  redis.call('LTRIM', K_DURATIONS, 0, DURATIONS_KEPT - 1)
end

local function median_lease_ms()
  local d = redis.call('LRANGE', K_DURATIONS, 0, -1)
  if #d < SPEC_MIN_SAMPLES then return nil end
  for i, v in ipairs(d) do d[i] = tonumber(v) end
  table.sort(d)
  return d[math.floor((#d + 1) / 2)]
end

-- Up to n ids (strings) held by straggling leases, oldest lease first, that
-- have no live copy.
local function straggling(n, now)
  local median = median_lease_ms()
  if not median then return {} end
  local old = redis.call('ZRANGEBYSCORE', K_BORN, '-inf', now - SPEC_FACTOR * median,
                         'LIMIT', 0, SPEC_SCAN)
  local out = {}
  for _, lid in ipairs(old) do
    local raw = redis.call('HGET', K_LEASES, lid)
    if not raw then
      redis.call('ZREM', K_BORN, lid)
    else
      local lease = decode_lease(raw)
      for _, t in ipairs(lease_ids(lease)) do
        if lease.first or redis.call('HGET', K_OWNER, t) == lid then
          local copy = redis.call('HGET', K_COPIES, t)
          if not copy or redis.call('HEXISTS', K_LEASES, copy) == 0 then
            out[#out + 1] = t
            if #out >= n then return out end
          end
        end
      end
    end
  end
  return out
end

-- A copy lease for request r of the ids `ids`: {'spec', ...} as lease_reply.
local function copy_lease(job, r, ids, now)
  local expires = now + job.lease_ms
  redis.call('HSET', K_LEASES, r.lid, encode_lease(r.any + SPECULATIVE, now,
                                                   table.concat(ids, ','), r.worker))
  redis.call('ZADD', K_DEADLINES, expires, r.lid)
  bulk('HSET', K_COPIES, interleave(ids, r.lid))
  local reply = lease_reply(job, r.lid, expires, ids, redis.call('HMGET', K_TRIES, unpack(ids)))
  reply[1] = 'spec'
  return reply
end

-- After a copy lease reported: it closes once none of its tasks is undone.
local function settle_copy(job, lid, lease)
  for _, t in ipairs(lease_ids(lease)) do
    if not is_done(job, t) then return end
  end
  redis.call('HDEL', K_LEASES, lid)
  redis.call('ZREM', K_DEADLINES, lid)
end

-- The lease lid as it stands (raw: its record): lets a re-run script
-- (a retried request with the same lease id) answer with the lease it
-- already made instead of a second one.
local function existing_lease(job, lid, raw)
  local lease = decode_lease(raw)
  local expires = tonumber(redis.call('ZSCORE', K_DEADLINES, lid))
  if lease.first then return span_reply(job, lid, expires, lease.first, lease.last) end
  local ids = {}
  for _, t in ipairs(lease_ids(lease)) do
    if lease.spec or redis.call('HGET', K_OWNER, t) == lid then ids[#ids + 1] = t end
  end
  local tries = {}
  if #ids > 0 then tries = redis.call('HMGET', K_TRIES, unpack(ids)) end
  local reply = lease_reply(job, lid, expires, ids, tries)
  if lease.spec then reply[1] = 'spec' end
  return reply
end

-- Why nothing can be handed out now: {'done'} or {'wait', why, ms until the
-- first lease expires or the first backed-off task is due}.
local function nothing_to_lease(job, now)
  if maybe_complete(job, now) then return {'done'} end
  local hint = nil
  for _, key in ipairs({K_DEADLINES, K_BACKOFF}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local ms = math.max(0, tonumber(first[2]) - now)
      if not hint or ms < hint then hint = ms end
    end
  end
  if job.sealed then return {'wait', 'leased', hint or 0} end
  return {'wait', 'unsealed', hint or 0}
end

-- Active workers of a job: the distinct workers that asked it for a lease
-- within the last lease length (`askers`, pruned here). Guided batching
-- divides what is left among them, and a failed task skips the worker that
-- failed it only while someone else is asking.
local function note_askers(job, reqs, todo, now)
  local args = {}
  for _, i in ipairs(todo) do
    args[#args + 1] = now
    args[#args + 1] = reqs[i].worker
  end
  bulk('ZADD', K_ASKERS, args)
  redis.call('ZREMRANGEBYSCORE', K_ASKERS, '-inf', now - job.lease_ms)
end

local function active_workers()
  return math.max(1, redis.call('ZCARD', K_ASKERS))
end

-- How many tasks request r asks for: its max_tasks or the batch size, and
-- for a guided job (docs/contract.md §8, guided self-scheduling) no more than
-- ceil(left / (2 * active workers)), at least 1; `left` is what is leasable now.
local function lease_sizes(job, reqs, todo)
  local want, wanted, left, active = {}, 0, 0, 1
  if job.guided then
    left = job.total - job.cursor + redis.call('ZCARD', K_PENDING)
    active = active_workers()
  end
  for _, i in ipairs(todo) do
    local n = reqs[i].max
    if n <= 0 then n = job.batch end
    if job.guided then
      n = math.max(1, math.min(n, math.ceil(left / (2 * active))))
      left = math.max(0, left - n)
    end
    want[i] = n
    wanted = wanted + n
  end
  return want, wanted
end

-- The handed-back tasks `back` (oldest work first) shared among the
-- requests: request i gets up to want[i], in order. A task that its last
-- holder failed skips that worker once (its `shun` entry is used up), so
-- that while another worker asks, a sick pod does not get its failure back
-- at once; bounded: one skip per failure, and a skipped task goes back to
-- pending for the next asker. Returns {i -> {ids, tries}}.
local function share_back(reqs, todo, want, back)
  local got = {}
  if #back == 0 then return got end
  local shun = {}
  if redis.call('HLEN', K_SHUN) > 0 then
    for i = 1, #back, CHUNK do  -- (unpack's stack limit: a slice at a time)
      local last = math.min(i + CHUNK - 1, #back)
      local who = redis.call('HMGET', K_SHUN, unpack(back, i, last))
      for j = i, last do if who[j - i + 1] then shun[back[j]] = who[j - i + 1] end end
    end
    if next(shun) then
      bulk('HDEL', K_SHUN, back)
      if active_workers() <= 1 then shun = {} end  -- nobody else is asking
    end
  end
  local taken, free = {}, 1  -- back[free] is the first task not taken
  for _, i in ipairs(todo) do
    local ids, tries = {}, {}
    while taken[free] do free = free + 1 end
    for j = free, #back do
      local t = back[j]
      if #ids >= want[i] then break end
      if not taken[j] and shun[t] ~= reqs[i].worker then
        taken[j] = true
        local k = redis.call('HINCRBY', K_TRIES, t, 1)
        if k == 1 then k = redis.call('HINCRBY', K_TRIES, t, 1) end  -- the first was implicit
        ids[#ids + 1] = t
        tries[#ids] = k
      end
    end
    got[i] = {ids, tries}
  end
  local left = {}
  for j, t in ipairs(back) do if not taken[j] then left[#left + 1] = t end end
  if #left > 0 then bulk('ZADD', K_PENDING, interleave(left)) end
  return got
end

-- New leases for requests reqs[i], i in todo (no lease record yet); fills
-- and returns replies.
local function lease_new(job, reqs, todo, replies, now)
  if #todo == 0 then return replies end
  if job.state ~= 'running' then
    local why = {'done'}
    if job.state == 'paused' then why = {'wait', 'paused', 0} end
    for _, i in ipairs(todo) do replies[i] = why end
    return replies
  end
  note_askers(job, reqs, todo, now)
  promote_due(job, now)
  local want, wanted = lease_sizes(job, reqs, todo)
  -- Tasks handed back first: they are the oldest work, and the tail of a
  -- job is made of them.
  local back = {}
  local popped = redis.call('ZPOPMIN', K_PENDING, wanted)
  for j = 1, #popped, 2 do back[#back + 1] = popped[j] end
  local shared = share_back(reqs, todo, want, back)
  local expires = now + job.lease_ms
  local cursor = job.cursor
  local owners, records, lefts, deadlines, spans, born = {}, {}, {}, {}, {}, {}
  local empty = false
  for _, i in ipairs(todo) do
    local r = reqs[i]
    local ids, tries = {}, {}
    if shared[i] then ids, tries = shared[i][1], shared[i][2] end
    -- Never handed out before: first attempts, which `tries` does not store.
    local fresh = math.min(want[i] - #ids, job.total - job.cursor)
    local n, tasks = #ids + fresh
    if #ids == 0 and fresh > 0 then  -- a span lease (see the top of this file)
      local first, last = job.cursor, job.cursor + fresh - 1
      tasks = fmt('%d-%d', first, last)
      spans[#spans + 1] = fmt('%d', first)
      spans[#spans + 1] = r.lid
      replies[i] = span_reply(job, r.lid, expires, first, last)
    elseif n > 0 then
      for k = 0, fresh - 1 do
        ids[#ids + 1] = fmt('%d', job.cursor + k)
        tries[#ids] = 1
      end
      interleave(ids, r.lid, owners)
      tasks = table.concat(ids, ',')
      replies[i] = lease_reply(job, r.lid, expires, ids, tries)
    end
    if fresh > 0 then job.cursor = job.cursor + fresh end
    if n == 0 then
      replies[i] = false
      empty = true
    else
      records[#records + 1] = r.lid
      records[#records + 1] = encode_lease(r.any, now, tasks, r.worker)
      lefts[#lefts + 1] = r.lid
      lefts[#lefts + 1] = fmt('%d', n)
      deadlines[#deadlines + 1] = fmt('%d', expires)
      deadlines[#deadlines + 1] = r.lid
      born[#born + 1] = now
      born[#born + 1] = r.lid
    end
  end
  if job.cursor ~= cursor then redis.call('HSET', K_META, 'cursor', fmt('%d', job.cursor)) end
  if #owners > 0 then bulk('HSET', K_OWNER, owners) end
  if #spans > 0 then bulk('ZADD', K_SPANS, spans) end
  if #records > 0 then
    bulk('HSET', K_LEASES, records)
    bulk('HSET', K_LEFT, lefts)
    bulk('ZADD', K_DEADLINES, deadlines)
    if job.speculate then bulk('ZADD', K_BORN, born) end
  end
  if empty then
    local why = nothing_to_lease(job, now)
    for _, i in ipairs(todo) do
      if not replies[i] then
        replies[i] = why
        if job.speculate and why[1] == 'wait' and job.sealed then
          local ids = straggling(want[i], now)
          if #ids > 0 then replies[i] = copy_lease(job, reqs[i], ids, now) end
        end
      end
    end
  end
  return replies
end

-- Hand out batches for several lease requests at once: an app process
-- combines the lease requests for one job that arrive while its previous
-- call is in flight, so the per-call cost (round trip, script start, the
-- bookkeeping writes) is paid once per group, not once per lease.
-- reqs: list of {lid, worker, max (0: the job's batch size), any (0|1)}.
-- Returns one reply per request, in order: a lease reply ('ok' or 'span'), {'done'} or
-- {'wait', why, ms until the first lease expires}.
local function do_leases(job, reqs, now)
  local replies, todo, lids, first, twins = {}, {}, {}, {}, {}
  for i, r in ipairs(reqs) do lids[i] = r.lid end
  local known = redis.call('HMGET', K_LEASES, unpack(lids))
  for i, r in ipairs(reqs) do
    if first[r.lid] then twins[i] = first[r.lid]  -- a retry that came with its original
    elseif known[i] then replies[i] = existing_lease(job, r.lid, known[i])
    else todo[#todo + 1] = i end
    first[r.lid] = first[r.lid] or i
  end
  replies = lease_new(job, reqs, todo, replies, now)
  for i, j in pairs(twins) do replies[i] = replies[j] end
  return replies
end

-- One lease request (see do_leases).
local function do_lease(job, lid, worker, max_tasks, any, now)
  return do_leases(job, {{lid = lid, worker = worker, max = max_tasks, any = any}}, now)[1]
end
