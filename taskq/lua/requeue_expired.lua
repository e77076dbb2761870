--[[ requeue_expired: the reaper. Running tasks whose lease deadline passed (their worker
  died or hung) go back to `queued` in their original place, or to the dead-letter queue
  when no attempts are left. Also forgets dead-letter entries older than the dead TTL.
  Idempotent and safe to run from every worker at once.

KEYS[1] running  KEYS[2] queued  KEYS[3] dead
KEYS[4..12] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] max tasks  ARGV[2] task key prefix  ARGV[3] idempotency key prefix
ARGV[4] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[5] dead TTL s  ARGV[6] wake (channel, or 'SPUBLISH <channel>')
Returns: {requeued, dead}
]]
--!include lib/common.lua
--!include lib/workflow.lua

local prefix, dead_ttl_s, wake = ARGV[2], tonumber(ARGV[5]), ARGV[6]
local now_ms, now_us = server_time()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
local requeued, dead = 0, 0
local workflows = {}
local T = nil
if #expired > 0 then T = tel_open(KEYS, 4, ARGV[4], now_ms) end
for _, id in ipairs(expired) do
  local key = prefix .. id
  redis.call('ZREM', KEYS[1], id)
  local f = redis.call('HMGET', key, 'attempts', 'max_retries', 'score', 'priority', 'worker', 'wf')
  if f[1] then
    redis.call('HDEL', key, 'token')
    if tonumber(f[1]) <= tonumber(f[2]) then
      redis.call('ZADD', KEYS[2], f[3], id)
      redis.call('HSET', key, 'status', 'queued', 'ready_ms', now_ms)
      tel_depth(T, f[4], 1)
      tel_event(T, 'requeued', id, f[4], f[1], f[5])
      requeued = requeued + 1
    else
      redis.call('ZADD', KEYS[3], now_ms, id)
      redis.call('HSET', key, 'status', 'dead', 'finished_ms', now_ms, 'error_type', 'LeaseExpired',
        'error', 'the lease expired on the last attempt (worker ' .. (f[5] or '?') .. ' died or hung)',
        'traceback', '')
      redis.call('HDEL', key, 'cancel')
      tel_event(T, 'dead', id, f[4], f[1], f[5])
      wf_settle_task(workflows, f[6], id, 'dead', wf_error(id, 'LeaseExpired', 'the lease expired on the last attempt'),
        now_ms, now_us, ARGV[4])
      expire_record(key, ARGV[3], dead_ttl_s)
      dead = dead + 1
    end
  end
end
wf_close_all(workflows)
if T then
  tel_count(T, 'requeued', requeued)
  tel_count(T, 'dead', dead)
  tel_flush(T)
end
if requeued > 0 then wake_publish(wake, '1') end
if dead_ttl_s > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms - dead_ttl_s * 1000)
end
return {requeued, dead}
