--[[ enqueue: create task records and put each in `queued` (or `scheduled` when delayed),
  honouring idempotency keys, in one step. One call takes a whole batch of one queue.

KEYS[1] queued  KEYS[2] scheduled  KEYS[3] config
KEYS[4..12] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] task key prefix  ARGV[2] idempotency key prefix
ARGV[3] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[4] queue name  ARGV[5] wake channel (published to when a task is the first in `queued`,
  or the earliest in `scheduled`, so sleeping workers wake for it)
ARGV[6..] groups of 14 per task: id, name, args JSON, kwargs JSON,
  priority 1..10 or '' for the queue's default priority (config field, else 5),
  delay ms, max_retries, timeout ms (0 none), result TTL s,
  retry base ms, retry cap ms, retry min ms, retry jitter, idempotency key ('' none)
Returns: a flat array of (id, created) per task: created is 1, or 0 when the idempotency key
  already named a task (then id is that task's id and nothing was written for it).
]]
--!include lib/common.lua

local prefix, idem_prefix, queue, wake = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local FIELDS = 14

local now_ms, now_us = server_time()
local T = tel_open(KEYS, 4, ARGV[3], now_ms)
local ready = ready_batch(KEYS[1], KEYS[3], T, now_us)
local default_priority = nil
local out = {}
local created = 0
for i = 6, #ARGV, FIELDS do
  local id, idem = ARGV[i], ARGV[i + 13]
  local existing = false
  if idem ~= '' then existing = redis.call('GET', idem_prefix .. idem) end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local key = prefix .. id
    local priority = tonumber(ARGV[i + 4])
    if not priority then
      default_priority = default_priority or tonumber(redis.call('HGET', KEYS[3], 'default_priority') or '5')
      priority = default_priority
    end
    local delay_ms = tonumber(ARGV[i + 5])
    local status, score, due = 'queued', '', ''
    if delay_ms > 0 then
      status, due = 'scheduled', now_ms + delay_ms
    else
      score = ready_add(ready, id, priority)
    end
    redis.call('HSET', key,
      'id', id, 'name', ARGV[i + 1], 'queue', queue, 'args', ARGV[i + 2], 'kwargs', ARGV[i + 3],
      'priority', priority, 'attempts', 0, 'max_retries', ARGV[i + 6], 'timeout_ms', ARGV[i + 7],
      'result_ttl_s', ARGV[i + 8], 'retry_base_ms', ARGV[i + 9], 'retry_cap_ms', ARGV[i + 10],
      'retry_min_ms', ARGV[i + 11], 'retry_jitter', ARGV[i + 12], 'enqueued_ms', now_ms,
      'status', status, 'score', score, 'ready_ms', now_ms, 'due_ms', due, 'idem', idem)
    if idem ~= '' then redis.call('SET', idem_prefix .. idem, id) end
    if delay_ms > 0 then
      redis.call('ZADD', KEYS[2], due, id)
      wake_if_earliest(KEYS[2], id, wake)
      tel_event(T, 'scheduled', id, priority, 0, nil)
    else
      tel_event(T, 'enqueued', id, priority, 0, nil)
    end
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
ready_commit(ready, wake)
tel_count(T, 'enqueued', created)
tel_flush(T)
return out
