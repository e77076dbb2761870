--[[ progress: a running task reports how far it got; fenced by its lease token so a late
  report from a lost attempt writes nothing. The worker rate-limits the calls (execution.py).

KEYS[1] task record  KEYS[2] events
ARGV[1] id  ARGV[2] lease token  ARGV[3] progress JSON {done, total, message}
ARGV[4] events maxlen (0: no event)  ARGV[5] worker id  ARGV[6] attempt
Returns: 1 written, 0 refused. The final value often arrives just after the attempt's own
  completion (the worker writes it at most every 0.5 s): it is still written, without an event,
  when the ended task's record names this worker and this attempt.
]]
local f = redis.call('HMGET', KEYS[1], 'token', 'status', 'priority', 'attempts', 'worker')
local live = f[1] == ARGV[2] and f[2] == 'running'
local late = f[2] and f[2] ~= 'running' and f[5] == ARGV[5] and f[4] == ARGV[6]
if not live and not late then return 0 end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'progress_ms', now_ms)
local maxlen = tonumber(ARGV[4])
if live and maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'type', 'progress', 'id', ARGV[1],
    'priority', f[3], 'attempt', f[4], 'worker', f[5] or '-', 'progress', ARGV[3])
end
return 1
