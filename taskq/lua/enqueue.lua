--[[ enqueue: create a task record and put it in `queued` (or `scheduled` when delayed),
  honouring an idempotency key, in one step.

KEYS[1] task record      KEYS[2] queued     KEYS[3] scheduled   KEYS[4] idempotency key
KEYS[5] meta             KEYS[6] config     KEYS[7] stats       KEYS[8] events
ARGV[1] id  ARGV[2] name  ARGV[3] args JSON  ARGV[4] kwargs JSON
ARGV[5] priority 1..10, or '' for the queue's default priority (config field, else 5)
ARGV[6] delay ms  ARGV[7] max_retries  ARGV[8] timeout ms (0 none)  ARGV[9] result TTL s
ARGV[10] retry base ms  ARGV[11] retry cap ms  ARGV[12] retry min ms  ARGV[13] retry jitter
ARGV[14] idempotency key ('' for none)  ARGV[15] events maxlen (0 = off)  ARGV[16] queue
ARGV[17] wake channel (published to when the task is the first in `queued`, or the
  earliest in `scheduled`, so sleeping workers wake for it)
Returns: {id, created}: created is 1, or 0 when the idempotency key already named a task
  (then id is that task's id and nothing was written).
]]
--!include lib/common.lua

local id, priority, delay_ms = ARGV[1], tonumber(ARGV[5]), tonumber(ARGV[6])
if not priority then
  priority = tonumber(redis.call('HGET', KEYS[6], 'default_priority') or '5')
end
local idem, maxlen = ARGV[14], tonumber(ARGV[15])

if idem ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {existing, 0} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('TASKQ DUPLICATE_ID task id ' .. id .. ' already exists')
end

local now_ms, now_us = server_time()
redis.call('HSET', KEYS[1],
  'id', id, 'name', ARGV[2], 'queue', ARGV[16], 'args', ARGV[3], 'kwargs', ARGV[4],
  'priority', priority, 'attempts', 0, 'max_retries', ARGV[7], 'timeout_ms', ARGV[8],
  'result_ttl_s', ARGV[9], 'retry_base_ms', ARGV[10], 'retry_cap_ms', ARGV[11],
  'retry_min_ms', ARGV[12], 'retry_jitter', ARGV[13], 'enqueued_ms', now_ms)
if idem ~= '' then
  redis.call('HSET', KEYS[1], 'idem', idem)
  redis.call('SET', KEYS[4], id)
end

if delay_ms > 0 then
  local due = now_ms + delay_ms
  redis.call('ZADD', KEYS[3], due, id)
  redis.call('HSET', KEYS[1], 'status', 'scheduled', 'due_ms', due)
  wake_if_earliest(KEYS[3], id, ARGV[17])
  emit(KEYS[8], maxlen, 'scheduled', id, priority, 0, nil)
else
  make_ready(KEYS[2], KEYS[5], KEYS[6], KEYS[1], id, priority, now_ms, now_us, ARGV[17])
  emit(KEYS[8], maxlen, 'enqueued', id, priority, 0, nil)
end
redis.call('HINCRBY', KEYS[7], 'enqueued', 1)
return {id, 1}
