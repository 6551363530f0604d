-- wrk script: GET a random key among key:0 .. key:(N-1), uniformly, with one prebuilt request per key.
-- Arguments after "--": the path prefix (/key: for the router, /keys/key: for a shard or HAProxy) and N.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local requests = {}

function init(args)
  local prefix = args[1]
  local count = tonumber(args[2])
  -- Each thread has its own Lua state: seed each differently so they do not ask for the same keys.
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  for i = 0, count - 1 do
    requests[i + 1] = wrk.format("GET", prefix .. i)
  end
end

function request()
  return requests[math.random(#requests)]
end
