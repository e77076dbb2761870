--[[ heartbeat: write a worker's registration, stamped with the Redis server's clock, so
  heartbeat ages and worker health never depend on the worker machine's clock.

KEYS[1] the worker's registration hash (one key: safe on a Redis Cluster)
ARGV[1] registration time to live, ms (it expires unless the next heartbeat comes first)
ARGV[2..] field, value pairs of the registration (lists already JSON-encoded). A
  'heartbeat_ms' pair overrides the server clock (tests, imports). A 'started_ms' pair sets
  the start time ('' for now: a worker's first heartbeat); without one the registered start
  time is kept (or set to now when there is none).
Returns: {heartbeat ms written, started ms registered}.
]]
--!include lib/common.lua

local now_ms = server_time()
local beat_ms, started_ms, started_given = nil, nil, false
local fields = {}
for i = 2, #ARGV, 2 do
  if ARGV[i] == 'heartbeat_ms' then
    beat_ms = tonumber(ARGV[i + 1])
  elseif ARGV[i] == 'started_ms' then
    started_ms, started_given = tonumber(ARGV[i + 1]), true
  else
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
  end
end
beat_ms = beat_ms or now_ms
if not started_given then started_ms = tonumber(redis.call('HGET', KEYS[1], 'started_ms') or '') end
started_ms = started_ms or beat_ms
fields[#fields + 1] = 'heartbeat_ms'
fields[#fields + 1] = fmt(beat_ms)
fields[#fields + 1] = 'started_ms'
fields[#fields + 1] = fmt(started_ms)
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return {beat_ms, started_ms}
