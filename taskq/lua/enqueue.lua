--[[ enqueue: create task records and put each in `queued` (or `scheduled` when delayed),
  honouring idempotency keys, in one step. One call takes a whole batch of one queue.

KEYS[1] queued  KEYS[2] scheduled  KEYS[3] config
KEYS[4..12] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
KEYS[13] running  KEYS[14] limits  KEYS[15] idle (the hand-off: lib/common.lua, handoff)
ARGV[1] task key prefix  ARGV[2] idempotency key prefix
ARGV[3] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[4] queue name (not stored: the task key holds it)
ARGV[5] wake (channel, or 'SPUBLISH <channel>') (published to when a task is the first in `queued`, or the earliest in
  `scheduled`, so sleeping workers wake for it; a task that finds `queued` empty and a worker
  registered idle is leased to that worker here instead and sent on its own channel)
ARGV[6..] groups of 15 per task: id, name, args JSON, kwargs JSON ('' for {}),
  priority 1..10 or '' for the queue's default priority (config field, else 5),
  delay ms, max_retries, timeout ms (0 or '' none), result TTL s,
  retry base ms, retry cap ms, retry min ms, retry jitter ('' each: the default backoff),
  idempotency key ('' none), meta JSON object of str labels ('' none)
Returns: a flat array of (id, created) per task: created is 1, or 0 when the idempotency key
  already named a task (then id is that task's id and nothing was written for it).
The record holds only what differs from the defaults: no id or queue (both are in the key),
  and no kwargs, timeout_ms, retry_*, due_ms, idem or meta field when it is empty or the default.
  Readers fill them in (taskq/task.py Task.from_hash, ops.py _parse_claim).
]]
--!include lib/common.lua

local prefix, idem_prefix, wake = ARGV[1], ARGV[2], ARGV[5]
local FIELDS = 15

local now_ms, now_us = server_time()
local now_text = fmt(now_ms)  -- cheaper than Redis printing the number, twice per task
local T = tel_open(KEYS, 4, ARGV[3], now_ms)
local ready = ready_batch(KEYS[1], KEYS[3], T, now_us)
local default_priority = ready.default_priority or 5
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
    local priority = tonumber(ARGV[i + 4]) or default_priority
    local delay_ms = 0
    if ARGV[i + 5] ~= '0' then delay_ms = tonumber(ARGV[i + 5]) end
    local status, score, due = 'queued', '', ''
    if delay_ms > 0 then
      status, due = 'scheduled', now_ms + delay_ms
    else
      score = ready_add(ready, id, priority)
    end
    local rec = {'name', ARGV[i + 1], 'args', ARGV[i + 2], 'priority', int_arg(priority), 'attempts', '0',
      'max_retries', ARGV[i + 6], 'result_ttl_s', ARGV[i + 8], 'enqueued_ms', now_text,
      'ready_ms', now_text, 'status', status}
    local n = #rec
    if score ~= '' then rec[n + 1], rec[n + 2], n = 'score', score, n + 2 end
    if due ~= '' then rec[n + 1], rec[n + 2], n = 'due_ms', due, n + 2 end
    local kwargs, timeout = ARGV[i + 3], ARGV[i + 7]
    if kwargs ~= '' and kwargs ~= '{}' then rec[n + 1], rec[n + 2], n = 'kwargs', kwargs, n + 2 end
    if timeout ~= '' and timeout ~= '0' then rec[n + 1], rec[n + 2], n = 'timeout_ms', timeout, n + 2 end
    if ARGV[i + 9] ~= '' then
      rec[n + 1], rec[n + 2], rec[n + 3], rec[n + 4] = 'retry_base_ms', ARGV[i + 9], 'retry_cap_ms', ARGV[i + 10]
      rec[n + 5], rec[n + 6], rec[n + 7], rec[n + 8] = 'retry_min_ms', ARGV[i + 11], 'retry_jitter', ARGV[i + 12]
      n = n + 8
    end
    if idem ~= '' then rec[n + 1], rec[n + 2], n = 'idem', idem, n + 2 end
    if ARGV[i + 14] ~= '' then rec[n + 1], rec[n + 2] = 'meta', ARGV[i + 14] end
    redis.call('HSET', key, unpack(rec))
    if idem ~= '' then redis.call('SET', idem_prefix .. idem, id) end
    if delay_ms > 0 then
      redis.call('ZADD', KEYS[2], due, id)
      wake_if_earliest(KEYS[2], id, wake)
      tel_event(T, 'scheduled', id, priority, '0', nil)
    else
      tel_event(T, 'enqueued', id, priority, '0', nil)
    end
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if ready_push(ready) then  -- the queue was empty: hand off to idle workers, else wake them
  local n = #ready.members / 2
  local left, handed = handoff(T, n, KEYS[1], KEYS[13], KEYS[15], KEYS[14], wake, prefix, now_ms, now_text)
  if left then wake_publish(wake, '1') end
  if handed > 0 then tel_count(T, 'started', handed) end
end
tel_count(T, 'enqueued', created)
tel_flush(T)
return out
