-- wrk script: POST one order record per request, ids unique per thread
-- (and per wrk process, with SW_BENCH_ID_BASE set apart for each).
local counter = 0
local base = tonumber(os.getenv("SW_BENCH_ID_BASE") or "0")
thread_id = 0  -- a global: setup() sets it per thread
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

-- With SW_BENCH_TOKEN set, every request carries it as a bearer token.
local token = os.getenv("SW_BENCH_TOKEN")
local headers = {["Content-Type"] = "application/json"}
if token then
  headers["Authorization"] = "Bearer " .. token
end

function request()
  counter = counter + 1
  local id = base + thread_id * 100000000 + counter
  local body = string.format(
    '{"id":%d,"customer":"customer-%d","total":"%d.50","tags":{"src":"bench"},"placed_at":"2026-01-31T12:00:00Z"}',
    id, id % 1000, id % 977)
  return wrk.format("POST", wrk.path, headers, body)
end
