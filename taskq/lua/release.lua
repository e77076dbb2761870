--[[ release: give running tasks back to `queued` at once (graceful shutdown), without
  spending an attempt; each keeps its original place in its priority.

KEYS[1] running  KEYS[2] queued
KEYS[3..11] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] task key prefix  ARGV[2] telemetry settings "<events maxlen> <events sample> <windows 0|1>"
ARGV[3] wake (channel, or 'SPUBLISH <channel>')  ARGV[4..] pairs of (task id, lease token)
Returns: the number of tasks released (a stale token is skipped).
]]
--!include lib/common.lua

local prefix, wake = ARGV[1], ARGV[3]
local now_ms = server_time()
local T = tel_open(KEYS, 3, ARGV[2], now_ms)
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
    tel_depth(T, f[4], 1)
    tel_event(T, 'released', id, f[4], nil, f[5])
    released = released + 1
  end
end
tel_count(T, 'released', released)
tel_flush(T)
if released > 0 then wake_publish(wake, '1') end
return released
