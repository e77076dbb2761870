--[[ fail: record a failed attempt, fenced by the lease token; schedule a retry after the
  given delay while attempts are left, else move the task to the dead-letter queue.

KEYS[1] running  KEYS[2] scheduled  KEYS[3] dead  KEYS[4] task record
KEYS[5..13] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] id  ARGV[2] lease token  ARGV[3] error type  ARGV[4] error message  ARGV[5] traceback
ARGV[6] retry delay ms (-1 = do not retry)
ARGV[7] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[8] idempotency key prefix  ARGV[9] dead TTL s  ARGV[10] wake channel
Returns: {'scheduled', due_ms} or {'dead', dead_ms}. A dead workflow member is settled in its
  workflow in the same call (lib/workflow.lua); a retry is not an outcome and counts nothing.
Errors: TASKQ LEASE_LOST when the token is not the task's current lease.
A dead record drops what only a queued or running task needs (score, ready_ms, lease_ms,
  cancel); it keeps result_ttl_s, which a re-driven task needs when it completes.
]]
--!include lib/common.lua
--!include lib/workflow.lua

local id, token, delay_ms = ARGV[1], ARGV[2], tonumber(ARGV[6])
local f = redis.call('HMGET', KEYS[4], 'token', 'status', 'attempts', 'max_retries', 'started_ms',
  'priority', 'worker', 'wf')
if f[1] ~= token or f[2] ~= 'running' then
  return redis.error_reply('TASKQ LEASE_LOST task ' .. id .. ' is no longer leased with this token')
end
local now_ms, now_us = server_time()
local T = tel_open(KEYS, 5, ARGV[7], now_ms)
local attempts = tonumber(f[3])
redis.call('ZREM', KEYS[1], id)
redis.call('HSET', KEYS[4], 'error_type', ARGV[3], 'error', ARGV[4], 'traceback', ARGV[5],
  'failed_ms', now_ms)
redis.call('HDEL', KEYS[4], 'token')
tel_count(T, 'failed', 1)
tel_observe(T, 'run', now_ms - tonumber(f[5]))

if delay_ms >= 0 and attempts <= tonumber(f[4]) then
  local due = now_ms + delay_ms
  redis.call('ZADD', KEYS[2], due, id)
  redis.call('HSET', KEYS[4], 'status', 'scheduled', 'due_ms', due)
  wake_if_earliest(KEYS[2], id, ARGV[10])
  tel_count(T, 'retried', 1)
  tel_event(T, 'retried', id, f[6], attempts, f[7])
  tel_flush(T)
  return {'scheduled', due}
end
redis.call('ZADD', KEYS[3], now_ms, id)
redis.call('HSET', KEYS[4], 'status', 'dead', 'finished_ms', now_ms)
redis.call('HDEL', KEYS[4], 'cancel', 'score', 'ready_ms', 'lease_ms')
tel_count(T, 'dead', 1)
tel_event(T, 'dead', id, f[6], attempts, f[7])
if f[8] then
  local workflows = {}
  wf_settle_task(workflows, f[8], id, 'dead', wf_error(id, ARGV[3], ARGV[4]), now_ms, now_us, ARGV[7])
  wf_close_all(workflows)
end
tel_flush(T)
expire_record(KEYS[4], ARGV[8], tonumber(ARGV[9]))
return {'dead', now_ms}
