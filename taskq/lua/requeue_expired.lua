--[[ requeue_expired: the reaper. Running tasks whose lease deadline passed (their worker
  died or hung) go back to `queued` in their original place, or to the dead-letter queue
  when no attempts are left. Also forgets dead-letter entries older than the dead TTL.
  Idempotent and safe to run from every worker at once.

KEYS[1] running  KEYS[2] queued  KEYS[3] dead  KEYS[4] stats  KEYS[5] events
ARGV[1] max tasks  ARGV[2] task key prefix  ARGV[3] idempotency key prefix
ARGV[4] events maxlen (0 = off)  ARGV[5] dead TTL s  ARGV[6] wake channel
Returns: {requeued, dead}
]]
--!include lib/common.lua

local prefix, maxlen, dead_ttl_s, wake = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local now_ms = server_time()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  local key = prefix .. id
  redis.call('ZREM', KEYS[1], id)
  local f = redis.call('HMGET', key, 'attempts', 'max_retries', 'score', 'priority', 'worker')
  if f[1] then
    redis.call('HDEL', key, 'token')
    if tonumber(f[1]) <= tonumber(f[2]) then
      redis.call('ZADD', KEYS[2], f[3], id)
      redis.call('HSET', key, 'status', 'queued', 'ready_ms', now_ms)
      emit(KEYS[5], maxlen, 'requeued', id, f[4], f[1], f[5])
      requeued = requeued + 1
    else
      redis.call('ZADD', KEYS[3], now_ms, id)
      redis.call('HSET', key, 'status', 'dead', 'finished_ms', now_ms, 'error_type', 'LeaseExpired',
        'error', 'the lease expired on the last attempt (worker ' .. (f[5] or '?') .. ' died or hung)',
        'traceback', '')
      redis.call('HDEL', key, 'cancel')
      emit(KEYS[5], maxlen, 'dead', id, f[4], f[1], f[5])
      expire_record(key, ARGV[3], dead_ttl_s)
      dead = dead + 1
    end
  end
end
if requeued > 0 then
  redis.call('HINCRBY', KEYS[4], 'requeued', requeued)
  if wake ~= '' then redis.call('PUBLISH', wake, '1') end
end
if dead > 0 then redis.call('HINCRBY', KEYS[4], 'dead', dead) end
if dead_ttl_s > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms - dead_ttl_s * 1000)
end
return {requeued, dead}
