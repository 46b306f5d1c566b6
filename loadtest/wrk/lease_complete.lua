-- wrk -t1 -c64 -d10s -s loadtest/wrk/lease_complete.lua http://127.0.0.1:8080 -- <job-id> [max_tasks]
-- The worker loop: lease, then complete every lease with "next" (which
-- leases the next batch in the same call). Each thread keeps a queue of the
-- leases it holds; a connection that is free completes one of them, or asks
-- for a new lease when the queue is empty.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")

n = 0
leases = 0
completes = 0
tasks_done = 0
non200 = 0
waits = 0
dones = 0
job = nil
max_tasks = 10
queue = {}
token = os.getenv("JOBMASTER_TOKEN")

function setup(thread) C.setup(thread) end

function init(args)
   job = args[1]
   max_tasks = tonumber(args[2] or "10")
end

local function headers()
   local h = {["Content-Type"] = "application/json",
              ["X-Forwarded-For"] = C.spread_ip(tid * 100003 + n)}
   if token then h["Authorization"] = "Bearer " .. token end
   return h
end

function request()
   n = n + 1
   local item = table.remove(queue)
   if item then
      completes = completes + 1
      local parts = {}
      for i, id in ipairs(item.ids) do
         parts[i] = string.format('{"id":%s,"ok":true,"result":null}', id)
      end
      local body = string.format('{"results":[%s],"next":{"max_tasks":%d}}',
                                 table.concat(parts, ","), max_tasks)
      return wrk.format("POST", "/api/v1/leases/" .. item.lease .. "/complete", headers(), body)
   end
   leases = leases + 1
   local body = string.format('{"worker":"wrk-%d-%d","max_tasks":%d,"job":"%s"}',
                              tid, n, max_tasks, job)
   return wrk.format("POST", "/api/v1/lease", headers(), body)
end

-- Find the lease answer in a body (a lease answer, or a complete answer's
-- "next"), and queue its lease id with its task ids.
local function take(body)
   local s = body:find('"status":%s*"ok"')
   if not s then
      if body:find('"status":%s*"wait"') then waits = waits + 1
      elseif body:find('"status":%s*"done"') then dones = dones + 1 end
      return
   end
   local lease_part = body:match('"lease":%s*(%b{})')
   if not lease_part then return end
   local lease_id = lease_part:match('"id":%s*"([^"]+)"')
   local tasks_part = body:match('"tasks":%s*(%b[])')
   if not lease_id or not tasks_part then return end
   local ids = {}
   for id in tasks_part:gmatch('"id":%s*(%d+)') do table.insert(ids, id) end
   table.insert(queue, {lease = lease_id, ids = ids})
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
      return
   end
   local acc = body:match('"accepted":%s*(%d+)')
   if acc then tasks_done = tasks_done + tonumber(acc) end
   take(body)
end

function done(summary, latency, requests)
   C.report({"n", "leases", "completes", "tasks_done", "waits", "dones", "non200"})
end
