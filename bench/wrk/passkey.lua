-- POST /api/v1/auth/passkey/finish, each request with its own challenge and
-- the assertion signed for it, from the bodies file (env BENCH_BODIES: one
-- JSON body per line), split between threads.
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua"
require("common")

local bodies = {}
local next_body = 1

function init(args)
  statuses = {}
  bodies = thread_share(os.getenv("BENCH_BODIES"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = bodies[next_body] or '{"challenge_id":"exhausted","credential":{}}'
  next_body = next_body + 1
  return wrk.format(nil, "/api/v1/auth/passkey/finish", nil, body)
end
