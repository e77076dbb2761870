--[[ schedule_tick: enqueue the fire times of one schedule exactly once. Every worker may
  call it for the same fire times at once; the schedule's state (its last fire time
  handled) is compared and set in the same step, so exactly one call enqueues them and
  the others change nothing.

KEYS[1] the queue's schedules (HASH: name -> "<last fire ms> <task id|-> <enqueued ms>")
KEYS[2] queued  KEYS[3] config
KEYS[4..12] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] schedule name  ARGV[2] its state as the caller read it ('' none)
ARGV[3] the new last fire time (ms)  ARGV[4] task key prefix
ARGV[5] telemetry settings "<events maxlen> <events sample> <windows 0|1>"  ARGV[6] wake (channel, or 'SPUBLISH <channel>')
ARGV[7] task name  ARGV[8] args JSON  ARGV[9] kwargs JSON ('' for {})
ARGV[10] priority 1..10 or '' for the queue's default  ARGV[11] max_retries
ARGV[12] timeout ms (0 none)  ARGV[13] result TTL s
ARGV[14..] pairs: task id, fire time (ms), one per fire time to run
Returns: {1, tasks enqueued} when the state was as read (the fire times are now handled),
  else {0, the state now} and nothing is written.
The record is the one enqueue.lua writes for a task with the default backoff, no delay and
  no idempotency key, with meta {"schedule": name, "fire_ms": fire time}.
]]
--!include lib/common.lua

local name, expected, new_last = ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('HGET', KEYS[1], name) or ''
if current ~= expected then return {0, current} end

local now_ms, now_us = server_time()
local T = tel_open(KEYS, 4, ARGV[5], now_ms)
local prefix, wake = ARGV[4], ARGV[6]
local ready = ready_batch(KEYS[2], KEYS[3], T, now_us)
local priority = tonumber(ARGV[10]) or ready.default_priority or 5
local last_id = '-'
local created = 0
for i = 14, #ARGV, 2 do
  local id, fire_ms = ARGV[i], ARGV[i + 1]
  local score = ready_add(ready, id, priority)
  local rec = {'name', ARGV[7], 'args', ARGV[8], 'priority', priority, 'attempts', 0,
    'max_retries', ARGV[11], 'result_ttl_s', ARGV[13], 'enqueued_ms', now_ms,
    'ready_ms', now_ms, 'status', 'queued', 'score', score,
    'meta', cjson.encode({schedule = name, fire_ms = fire_ms})}
  local n = #rec
  if ARGV[9] ~= '' and ARGV[9] ~= '{}' then rec[n + 1], rec[n + 2], n = 'kwargs', ARGV[9], n + 2 end
  if ARGV[12] ~= '' and ARGV[12] ~= '0' then rec[n + 1], rec[n + 2] = 'timeout_ms', ARGV[12] end
  redis.call('HSET', prefix .. id, unpack(rec))
  tel_event(T, 'enqueued', id, priority, 0, nil)
  last_id = id
  created = created + 1
end
ready_commit(ready, wake)
tel_count(T, 'enqueued', created)
tel_flush(T)
local state = new_last .. ' ' .. last_id .. ' ' .. now_ms
if created == 0 and current ~= '' then
  local _, old_id, old_ms = string.match(current, '^(%S+) (%S+) (%S+)$')
  if old_id then state = new_last .. ' ' .. old_id .. ' ' .. old_ms end
end
redis.call('HSET', KEYS[1], name, state)
return {1, created}
