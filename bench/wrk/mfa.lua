-- POST /api/v1/auth/mfa, each request with its own pending sign-in (an
-- mfa_token) and that user's current TOTP code, from the pairs file (env
-- BENCH_PAIRS: "token code" per line), split between threads.
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua"
require("common")

local pairs_list = {}
local next_pair = 1

function init(args)
  statuses = {}
  pairs_list = thread_share(os.getenv("BENCH_PAIRS"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local pair = pairs_list[next_pair] or "exhausted 000000"
  next_pair = next_pair + 1
  local token, code = pair:match("^(%S+) (%S+)$")
  return wrk.format(nil, "/api/v1/auth/mfa", nil,
    '{"mfa_token":"' .. token .. '","code":"' .. code .. '"}')
end
