--[[ release: give running tasks back to `queued` at once (graceful shutdown), without
  spending an attempt; each keeps its original place in its priority.

KEYS[1] running  KEYS[2] queued  KEYS[3] meta  KEYS[4] config  KEYS[5] stats  KEYS[6] events
ARGV[1] task key prefix  ARGV[2] events maxlen (0 = off)  ARGV[3] wake channel
ARGV[4..] pairs of (task id, lease token)
Returns: the number of tasks released (a stale token is skipped).
]]
--!include lib/common.lua

local prefix, maxlen, wake = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local now_ms = server_time()
local released = 0
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 'token', 'status', 'score', 'priority', 'worker')
  if f[1] == token and f[2] == 'running' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HINCRBY', key, 'attempts', -1)
    redis.call('ZADD', KEYS[2], f[3], id)
    redis.call('HSET', key, 'status', 'queued', 'ready_ms', now_ms)
    redis.call('HDEL', key, 'token')
    emit(KEYS[6], maxlen, 'released', id, f[4], nil, f[5])
    released = released + 1
  end
end
if released > 0 then
  redis.call('HINCRBY', KEYS[5], 'released', released)
  if wake ~= '' then redis.call('PUBLISH', wake, '1') end
end
return released
