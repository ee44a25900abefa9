-- POST a JSON body (env BENCH_BODY) to wrk's URL. "{n}" in the body becomes a
-- per-request unique number (sign-ups need unique emails).
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua"
require("common")

local body
local n = 0

function init(args)
  statuses = {}
  body = os.getenv("BENCH_BODY")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local b = string.gsub(body, "{n}", id .. "-" .. n)
  return wrk.format(nil, nil, nil, b)
end
