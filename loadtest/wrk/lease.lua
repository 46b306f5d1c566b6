-- wrk -t1 -c64 -d10s -s loadtest/wrk/lease.lua http://127.0.0.1:8080 -- <job-id|-> [max_tasks]
-- POST /api/v1/lease for one job, a new worker name per request. The leases
-- are never completed: give the job enough tasks (and a long lease time)
-- for the run, or the answers turn into "wait".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")

n = 0
ok = 0
waits = 0
dones = 0
non200 = 0
job = nil
max_tasks = 1
token = os.getenv("JOBMASTER_TOKEN")

function setup(thread) C.setup(thread) end

function init(args)
   job = args[1]
   if job == "-" then job = nil end  -- "-": name no job (the server picks one)
   max_tasks = tonumber(args[2] or "1")
end

function request()
   n = n + 1
   local body
   if job then
      body = string.format('{"worker":"wrk-%d-%d","max_tasks":%d,"job":"%s"}', tid, n, max_tasks, job)
   else
      body = string.format('{"worker":"wrk-%d-%d","max_tasks":%d}', tid, n, max_tasks)
   end
   local h = {["Content-Type"] = "application/json",
              ["X-Forwarded-For"] = C.spread_ip(tid * 100003 + n)}
   if token then h["Authorization"] = "Bearer " .. token end
   return wrk.format("POST", "/api/v1/lease", h, body)
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
   elseif body:find('"status":%s*"ok"') then
      ok = ok + 1
   elseif body:find('"status":%s*"wait"') then
      waits = waits + 1
   else
      dones = dones + 1
   end
end

function done(summary, latency, requests)
   C.report({"n", "ok", "waits", "dones", "non200"})
end
