-- wrk script: 90% GET / 10% SET of random keys among key:0 .. key:(N-1); a SET is a POST of
-- {"value": <100-byte string>} as application/json. Arguments after "--": path prefix, N, SET percent.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local gets = {}
local sets = {}
local set_percent = 10

function init(args)
  local prefix = args[1]
  local count = tonumber(args[2])
  set_percent = tonumber(args[3] or "10")
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  local headers = { ["Content-Type"] = "application/json" }
  for i = 0, count - 1 do
    local value = string.sub("w" .. i .. string.rep("x", 100), 1, 100)
    gets[i + 1] = wrk.format("GET", prefix .. i)
    sets[i + 1] = wrk.format("POST", prefix .. i, headers, '{"value":"' .. value .. '"}')
  end
end

function request()
  local i = math.random(#gets)
  if math.random(100) <= set_percent then
    return sets[i]
  end
  return gets[i]
end
