-- lib_leasing.lua: handing out — lease replies, straggler copies, batch sizes
-- (fixed or guided), new leases for a group of requests. Prepended last,
-- before the operation (app/store/scripts.py LIBS).

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
local function share_back(reqs, todo, want, back, shunned)
  local got = {}
  if #back == 0 then return got end
  local shun = {}
  if shunned > 0 then
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
  -- (as many more as there are shunned tasks, at most CHUNK: a request
  -- whose worker must skip one still gets the next, if there is one)
  local back, shunned = {}, redis.call('HLEN', K_SHUN)
  local popped = redis.call('ZPOPMIN', K_PENDING, wanted + math.min(shunned, CHUNK))
  for j = 1, #popped, 2 do back[#back + 1] = popped[j] end
  local shared = share_back(reqs, todo, want, back, shunned)
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
