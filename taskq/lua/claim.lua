--[[ claim: promote due scheduled tasks, then pop up to N tasks by (priority, FIFO) and
  lease each to the worker, in one step: a task is always in `queued` or in `running`,
  never in neither, so a worker killed at any point loses nothing.

KEYS[1] queued  KEYS[2] scheduled  KEYS[3] running  KEYS[4] config
KEYS[5..13] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] max tasks  ARGV[2] lease ms  ARGV[3] worker id  ARGV[4] task key prefix
ARGV[5] telemetry settings "<events maxlen> <events sample> <windows 0|1>"  ARGV[6] wake channel
Returns: a flat array: first the due time (ms) of the earliest task still scheduled, or -1
  when none is; then 14 fields per claimed task:
  id, token, attempts, name, args, kwargs, timeout_ms, max_retries,
  retry_base_ms, retry_cap_ms, retry_min_ms, retry_jitter, priority, meta
  (kwargs, timeout_ms, the retry_* fields and meta are nil where the record leaves out the
  default: ops.py _parse_claim fills them in)
  Lease tokens are unique per queue: a fresh number from the queue's lease counter.
]]
--!include lib/common.lua

local max_n, lease_ms, worker, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local now_ms, now_us = server_time()
local T = tel_open(KEYS, 5, ARGV[5], now_ms)

promote_due(KEYS[2], KEYS[1], KEYS[4], T, prefix, math.max(max_n, 100), ARGV[6], now_ms, now_us)

local popped = redis.call('ZPOPMIN', KEYS[1], max_n)
local first_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local out = {-1}
if first_due[2] then out[1] = tonumber(first_due[2]) end
if #popped == 0 then
  tel_flush(T)
  return out
end

local deadline = now_ms + lease_ms
local last_token = redis.call('HINCRBY', T.meta, 'lease_seq', #popped / 2)
local first_token = last_token - #popped / 2
local leases = {}
local claimed = 0
for i = 1, #popped, 2 do
  local id = popped[i]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 'name', 'args', 'kwargs', 'timeout_ms', 'max_retries',
    'retry_base_ms', 'retry_cap_ms', 'retry_min_ms', 'retry_jitter', 'priority', 'ready_ms', 'attempts', 'meta')
  if f[1] then
    local attempts = tonumber(f[12]) + 1
    local token = tostring(first_token + (i + 1) / 2)
    redis.call('HSET', key, 'status', 'running', 'attempts', attempts, 'started_ms', now_ms,
      'worker', worker, 'token', token, 'lease_ms', lease_ms)
    leases[#leases + 1] = deadline
    leases[#leases + 1] = id
    tel_observe(T, 'wait', now_ms - tonumber(f[11] or now_ms))
    tel_depth(T, f[10], -1)
    tel_event(T, 'started', id, f[10], attempts, worker)
    local n = #out
    out[n + 1], out[n + 2], out[n + 3] = id, token, attempts
    for j = 1, 10 do out[n + 3 + j] = f[j] end
    out[n + 14] = f[13]
    claimed = claimed + 1
  end
end
if claimed > 0 then redis.call('ZADD', KEYS[3], unpack(leases)) end
tel_count(T, 'started', claimed)
tel_flush(T)
return out
