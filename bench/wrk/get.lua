-- GET wrk's URL, optionally with a bearer token (env BENCH_TOKEN).
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua"
require("common")

function init(args)
  statuses = {}
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end
