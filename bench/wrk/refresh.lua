-- POST /api/v1/auth/refresh, each request with a fresh, valid refresh token
-- from the pool file (env BENCH_TOKENS), split between threads.
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua"
require("common")

local tokens = {}
local next_token = 1

function init(args)
  statuses = {}
  tokens = thread_share(os.getenv("BENCH_TOKENS"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local token = tokens[next_token]
  next_token = next_token + 1
  if token == nil then
    token = "exhausted"
  end
  return wrk.format(nil, "/api/v1/auth/refresh", nil,
    '{"refresh_token":"' .. token .. '"}')
end
