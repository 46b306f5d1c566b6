-- lib.lua: keys, records and helpers shared by every per-job script.
-- app/store/scripts.py puts this file, then lib_results.lua, lib_tasks.lua and
-- lib_leasing.lua (LIBS), in front of each operation when it registers it, so
-- each operation is one atomic script while the rules live here once.
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
