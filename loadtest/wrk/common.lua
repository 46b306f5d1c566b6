-- Shared by the wrk scripts (loaded with dofile from the same directory).
-- Each request carries X-Forwarded-For with a loopback address whose third
-- octet varies, so an nginx with realip (trusting 127.0.0.1) and ip_hash
-- spreads wrk's connections over the app instances as it spreads pods.
local M = {}

function M.spread_ip(n)
   return string.format("127.%d.%d.1", 1 + math.floor(n / 62500) % 126, n % 250)
end

-- Keep per-thread counters; done() sums them over threads.
M.threads = {}

function M.setup(thread)
   thread:set("tid", #M.threads)
   table.insert(M.threads, thread)
end

function M.report(names)
   local totals = {}
   for _, t in ipairs(M.threads) do
      for _, k in ipairs(names) do
         totals[k] = (totals[k] or 0) + (t:get(k) or 0)
      end
   end
   local parts = {}
   for _, k in ipairs(names) do
      table.insert(parts, string.format("%s=%d", k, totals[k]))
   end
   io.write("jobmaster: " .. table.concat(parts, " ") .. "\n")
end

return M
