--[[ progress: a running task reports how far it got; fenced by its lease token so a late
  report from a lost attempt writes nothing. The worker rate-limits the calls (execution.py).

KEYS[1] task record  KEYS[2] events
ARGV[1] id  ARGV[2] lease token  ARGV[3] progress JSON {done, total, message}
ARGV[4] events maxlen (0: no event)
Returns: 1 written, 0 refused.
]]
local f = redis.call('HMGET', KEYS[1], 'token', 'status', 'priority', 'attempts', 'worker')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then return 0 end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'progress_ms', now_ms)
local maxlen = tonumber(ARGV[4])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'type', 'progress', 'id', ARGV[1],
    'priority', f[3], 'attempt', f[4], 'worker', f[5] or '-', 'progress', ARGV[3])
end
return 1
