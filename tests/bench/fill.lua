-- wrk script: POST jobs of SW_BENCH_RECORDS order records (1: a single
-- object), ids unique across threads; each thread stops after
-- SW_BENCH_JOBS answers (requests already on the wire still land: the
-- caller counts what was queued).
-- With SW_BENCH_PAUSE_MS each connection waits that long before each
-- request (a fixed-rate load), and with SW_BENCH_IDS each
-- thread writes the job ids it was given to "<SW_BENCH_IDS>.<thread>".
local per_job = tonumber(os.getenv("SW_BENCH_RECORDS") or "1")
local quota = tonumber(os.getenv("SW_BENCH_JOBS") or "0")
local pause_ms = tonumber(os.getenv("SW_BENCH_PAUSE_MS") or "0")
local ids_path = os.getenv("SW_BENCH_IDS")
local threads = 0
local counter, answered, out = 0, 0, nil
thread_id = 0  -- a global: setup() sets it per thread
local headers = {["Content-Type"] = "application/json"}

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  if ids_path then
    out = io.open(ids_path .. "." .. thread_id, "w")
    out:setvbuf("line")
  end
end

local function record(id)
  return string.format(
    '{"id":%d,"customer":"customer-%d","total":"%d.50","tags":{"src":"bench"},"placed_at":"2026-01-31T12:00:00Z"}',
    id, id % 1000, id % 977)
end

function request()
  local base = (thread_id + 1) * 1000000000 + counter * per_job
  counter = counter + 1
  local body
  if per_job == 1 then
    body = record(base)
  else
    local parts = {}
    for i = 0, per_job - 1 do parts[#parts + 1] = record(base + i) end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", wrk.path, headers, body)
end

function delay()
  return pause_ms
end

function response(status, headers, body)
  answered = answered + 1
  if out and status == 202 then
    local id = string.match(body, '"job_id":"([0-9a-f-]+)"')
    if id then out:write(id, "\n") end
  end
  if quota > 0 and answered >= quota then
    if out then out:close() out = nil end
    wrk.thread:stop()
  end
end
