-- complete.lua: record a lease's results; optionally release the rest and
-- lease the next batch, all in one atomic step.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 lease id, 2 worker ('' : the lease's own), 3 release rest (0|1), 4 reclaim limit,
--       5 next lease id ('' for none), 6 next max tasks, 7 n results,
--       8.. n triples: task id, ok (1|0), body (raw JSON result, or error text)
-- Returns {'missing'} | {'bad', id} (not a task id; nothing changed) |
--         {'ok', accepted, duplicates, retried, dead, ignored, released, any, worker, next...}
--         where any is the lease's any-job flag, worker the name results were
--         recorded under, and next... is one lease reply (do_leases, lib.lua), or nothing.
-- Rules: the first result for a task wins; a task already done counts as a
-- duplicate. A late success from a lease that held the task and lost it
-- (expired, released, or failed it) is accepted while the task is not done
-- (it leaves whichever state it is in); a late failure changes nothing
-- (ignored), nor does a result from a lease that never held the task.
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
local lid, worker = ARGV[1], ARGV[2]
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  local id = tonumber(ARGV[8 + i * 3])
  if not id or id < 0 or id ~= math.floor(id) then  -- (an id >= total: ignored below)
    return {'bad', ARGV[8 + i * 3]}
  end
end

-- Who may report: the live lease, or one remembered as expired or released
-- (lib.lua `remember`), which may still report the tasks it held. A lease
-- id known as neither never held a task here: everything it sends is ignored.
local raw = redis.call('HGET', K_LEASES, lid)
local lease, known, any, held = nil, nil, 0, nil
if raw then
  lease = decode_lease(raw)
  known = lease
else
  local gone = redis.call('HGET', K_GONE, lid)
  if gone then
    known, held = decode_lease(gone), {}
    for _, t in ipairs(lease_ids(known)) do held[t] = true end
  end
end
if known then
  any = known.any
  if worker == '' then worker = known.w end
end
if worker == '' then worker = 'unknown' end
-- A late result from a remembered lease ran as that lease's attempt, not
-- the one of whoever holds the task now (lib.lua gone_attempts).
local ran_as = held and gone_attempts(lid)

local finished_at = string.format('%.3f', now / 1000)
local worker_json = cjson.encode(worker)
local function result_line(t, attempt, body)
  return '{"id":' .. t .. ',"attempt":' .. attempt .. ',"worker":' .. worker_json ..
         ',"ok":true,"result":' .. body .. ',"finished_at":' .. finished_at .. '}'
end
local late = {}  -- id, line pairs of late results, stored with the others at the end
local function record(t, body)
  local attempt = (ran_as and (ran_as[t] or '1')) or redis.call('HGET', K_TRIES, t) or '1'
  late[#late + 1] = t
  late[#late + 1] = result_line(t, attempt, body)
  redis.call('HDEL', K_TRIES, t)
  redis.call('HDEL', K_FAILS, t)
end

local accepted, duplicates, retried, dead, ignored, failed = 0, 0, 0, 0, 0, 0
local ids, oks, bodies = {}, {}, {}
for i = 1, n do
  local at = 5 + 3 * i  -- ARGV[8], [11], ... hold the ids
  ids[i] = ARGV[at]  -- canonical decimal (the app sends ints), checked above
  oks[i] = ARGV[at + 1] == '1'
  bodies[i] = ARGV[at + 2]
end

-- The common case: a span lease (lib.lua) reported whole, every task a
-- success. It held all of them, so there is nothing to look up per task.
local whole = lease ~= nil and lease.first ~= nil and n == lease.last - lease.first + 1
if whole then
  local seen = {}
  for i = 1, n do
    local t = tonumber(ids[i])
    if not oks[i] or t < lease.first or t > lease.last or seen[t] then
      whole = false
      break
    end
    seen[t] = true
  end
end
if whole then
  local lines = {}
  for i = 1, n do
    lines[2 * i - 1] = ids[i]
    lines[2 * i] = result_line(ids[i], '1', bodies[i])
  end
  store_results(job, lines)
  close_lease(lid, true)
  accepted = n
  n = 0  -- nothing left for the paths below
end

-- Anything else: the lease becomes an ordinary one (if it was a span) and
-- each result is weighed against who holds its task now.
local mine = held or {}
if lease and n > 0 then
  local own
  if lease.first then own = materialize(lid, lease) else own = lease_ids(lease) end
  for _, t in ipairs(own) do mine[t] = true end
end

-- Successes for tasks this lease still owns, in bulk. A task with an owner
-- is never done (recording a result drops the owner), so these need no
-- HEXISTS; every other result takes the careful path below.
local owners, tries = {}, {}
for i = 1, n, CHUNK do
  local last = math.min(i + CHUNK - 1, n)
  local o = redis.call('HMGET', K_OWNER, unpack(ids, i, last))
  local a = redis.call('HMGET', K_TRIES, unpack(ids, i, last))
  for j = 1, #o do owners[i + j - 1] = o[j]; tries[i + j - 1] = a[j] end
end
local seen, careful, done_ids, lines, retried_ids = {}, {}, {}, {}, {}
for i = 1, n do
  local t = ids[i]
  if seen[t] then
    duplicates = duplicates + 1  -- the same task twice in one call: the first wins
  elseif oks[i] and owners[i] == lid then
    done_ids[#done_ids + 1] = t
    if tries[i] then retried_ids[#retried_ids + 1] = t end
    lines[#lines + 1] = t
    lines[#lines + 1] = result_line(t, tries[i] or '1', bodies[i])  -- strings: no number printing
  else
    careful[#careful + 1] = i
  end
  seen[t] = true
end
if #done_ids > 0 then
  store_results(job, lines)
  bulk('HDEL', K_OWNER, done_ids)
  if #retried_ids > 0 then  -- only tasks handed out more than once have these
    bulk('HDEL', K_TRIES, retried_ids)
    bulk('HDEL', K_FAILS, retried_ids)
  end
  accepted = accepted + #done_ids
  if redis.call('HINCRBY', K_LEFT, lid, -#done_ids) <= 0 then close_lease(lid) end
end

for _, i in ipairs(careful) do
  local t, ok, body = ids[i], oks[i], bodies[i]
  if is_done(job, t) then
    duplicates = duplicates + 1
  elseif not mine[t] then
    ignored = ignored + 1  -- never this lease's task: not even looked up
  else
    local owner = owner_of(t)
    if owner == lid then
      unown(t, lid)
      failed = failed + 1  -- (a success owned by this lease took the bulk path)
      if give_back(job, t, true, body, worker, now) == 'dead' then dead = dead + 1
      else retried = retried + 1 end
    elseif ok then
      -- late: the task is pending, leased to someone else, or dead
      if owner then unown(t, owner)
      elseif not take_pending(t) then redis.call('HDEL', K_DEAD, t) end
      record(t, body)
      accepted = accepted + 1
    else
      ignored = ignored + 1
    end
  end
end

store_results(job, late)

local released = 0
if ARGV[3] == '1' then released = return_lease(job, lid, now, false) end
if lease and lease.spec then settle_copy(job, lid, lease)
elseif lease and redis.call('HEXISTS', K_LEASES, lid) == 0 then note_duration(job, lease, now) end
touch_worker(worker, now, accepted, failed, 0, true)
reclaim(job, now, tonumber(ARGV[4]))
maybe_complete(job, now)

local reply = {'ok', accepted, duplicates, retried, dead, ignored, released, any, worker}
if ARGV[5] ~= '' then
  for _, v in ipairs(do_lease(job, ARGV[5], worker, tonumber(ARGV[6]), any, now)) do
    reply[#reply + 1] = v
  end
end
return reply
