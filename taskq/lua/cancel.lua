--[[ cancel: a queued or scheduled task is cancelled at once; a running one gets its abort
  flag set (the worker sees it at its next heartbeat).

KEYS[1] task record  KEYS[2] queued  KEYS[3] scheduled  KEYS[4] stats  KEYS[5] events
ARGV[1] id  ARGV[2] events maxlen (0 = off)  ARGV[3] idempotency key prefix
Returns: 'cancelled' or 'cancelling' (running; flag set).
Errors: TASKQ NOT_FOUND (no such task), TASKQ NOT_CANCELLABLE (already finished).
]]
--!include lib/common.lua

local id, maxlen = ARGV[1], tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'status', 'result_ttl_s', 'priority', 'attempts')
local status = f[1]
if not status then
  return redis.error_reply('TASKQ NOT_FOUND no task ' .. id ..
    ': it never existed, or its record expired after its TTL')
end
if status == 'queued' or status == 'scheduled' then
  local now_ms = server_time()
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now_ms)
  redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
  emit(KEYS[5], maxlen, 'cancelled', id, f[3], f[4], nil)
  expire_record(KEYS[1], ARGV[3], tonumber(f[2]))
  return 'cancelled'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  emit(KEYS[5], maxlen, 'cancel_requested', id, f[3], f[4], nil)
  return 'cancelling'
end
return redis.error_reply('TASKQ NOT_CANCELLABLE task ' .. id .. ' is already ' .. status)
