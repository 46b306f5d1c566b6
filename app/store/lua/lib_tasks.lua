-- lib_tasks.lua: tasks going back — retry backoff, leaving and closing leases,
-- give-back to pending or dead, remembered leases, reclaiming expired ones.
-- Prepended after lib_results.lua (app/store/scripts.py LIBS).

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
