-- Shared by every benchmark script: per-thread status counts and a JSON
-- summary line (prefixed "JSON") that bench/run.py parses.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- This thread's share of the lines of the file `path` (one item per
-- request, each used once): every thread takes every BENCH_THREADS-th line.
function thread_share(path)
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local share = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      table.insert(share, line)
    end
    i = i + 1
  end
  return share
end

function count_status(status)
  local key = "s" .. status
  statuses[key] = (statuses[key] or 0) + 1
end

function response(status, headers, body)
  count_status(status)
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for key, n in pairs(counts) do
      merged[key] = (merged[key] or 0) + n
    end
  end
  local parts = {}
  for key, n in pairs(merged) do
    table.insert(parts, string.format('"%s":%d', string.sub(key, 2), n))
  end
  local e = summary.errors
  io.write(string.format(
    'JSON{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"statuses":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, table.concat(parts, ",")))
end
