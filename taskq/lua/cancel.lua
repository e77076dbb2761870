--[[ cancel: a queued, scheduled or waiting (workflow) task is cancelled at once, and its
  workflow hears of it in the same call (lib/workflow.lua); a running one gets its abort
  flag set (the worker sees it at its next heartbeat).

KEYS[1] task record  KEYS[2] queued  KEYS[3] scheduled
KEYS[4..12] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] id  ARGV[2] telemetry settings "<events maxlen> <events sample> <windows 0|1>"
ARGV[3] idempotency key prefix
Returns: 'cancelled' or 'cancelling' (running; flag set).
Errors: TASKQ NOT_FOUND (no such task), TASKQ NOT_CANCELLABLE (already finished).
]]
--!include lib/common.lua
--!include lib/workflow.lua

local id = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'status', 'result_ttl_s', 'priority', 'attempts', 'wf')
local status = f[1]
if not status then
  return redis.error_reply('TASKQ NOT_FOUND no task ' .. id ..
    ': it never existed, or its record expired after its TTL')
end
if status == 'queued' or status == 'scheduled' or status == 'waiting' then
  local now_ms, now_us = server_time()
  local T = tel_open(KEYS, 4, ARGV[2], now_ms)
  if redis.call('ZREM', KEYS[2], id) == 1 then tel_depth(T, f[3], -1) end
  redis.call('ZREM', KEYS[3], id)
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now_ms)
  tel_count(T, 'cancelled', 1)
  tel_event(T, 'cancelled', id, f[3], f[4], nil)
  if f[5] then
    local workflows = {}
    wf_settle_task(workflows, f[5], id, 'cancelled', wf_error(id, 'Cancelled', 'the task was cancelled'), now_ms, now_us, ARGV[2])
    wf_close_all(workflows)
  end
  tel_flush(T)
  expire_record(KEYS[1], ARGV[3], tonumber(f[2]))
  return 'cancelled'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  local T = tel_open(KEYS, 4, ARGV[2], server_time())
  tel_event(T, 'cancel_requested', id, f[3], f[4], nil)
  tel_flush(T)
  return 'cancelling'
end
return redis.error_reply('TASKQ NOT_CANCELLABLE task ' .. id .. ' is already ' .. status)
