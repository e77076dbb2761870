--[[ complete: record a task's result and finish it, fenced by the lease token (a worker
  whose lease expired and was requeued cannot finish the task a second time). The outcome
  is 'succeeded', or 'cancelled' for a running task that stopped on its abort flag.

KEYS[1] running  KEYS[2] task record  KEYS[3] stats  KEYS[4] events  KEYS[5] hist
ARGV[1] id  ARGV[2] lease token  ARGV[3] result JSON  ARGV[4] events maxlen (0 = off)
ARGV[5] idempotency key prefix  ARGV[6] outcome: 'succeeded' or 'cancelled'
Returns: 1. Errors: TASKQ LEASE_LOST when the token is not the task's current lease.
]]
--!include lib/common.lua

local id, token = ARGV[1], ARGV[2]
local f = redis.call('HMGET', KEYS[2], 'token', 'status', 'started_ms', 'enqueued_ms', 'result_ttl_s',
  'priority', 'attempts', 'worker')
if f[1] ~= token or f[2] ~= 'running' then
  return redis.error_reply('TASKQ LEASE_LOST task ' .. id .. ' is no longer leased with this token')
end
local now_ms = server_time()
local outcome = ARGV[6]
redis.call('ZREM', KEYS[1], id)
redis.call('HSET', KEYS[2], 'status', outcome, 'result', ARGV[3], 'finished_ms', now_ms)
redis.call('HDEL', KEYS[2], 'token', 'cancel')
redis.call('HINCRBY', KEYS[3], outcome, 1)
if outcome == 'succeeded' then
  observe(KEYS[5], 'run', now_ms - tonumber(f[3]))
  observe(KEYS[5], 'e2e', now_ms - tonumber(f[4]))
end
emit(KEYS[4], tonumber(ARGV[4]), outcome, id, f[6], f[7], f[8])
expire_record(KEYS[2], ARGV[5], tonumber(f[5]))
return 1
