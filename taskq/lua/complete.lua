--[[ complete: record the results of finished tasks of one queue, each fenced by its lease
  token (a worker whose lease expired and was requeued cannot finish the task a second
  time). An outcome is 'succeeded', or 'cancelled' for a running task that stopped on its
  abort flag. A worker sends every task that finished since its last round trip at once.

KEYS[1] running
KEYS[2..10] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] task key prefix  ARGV[2] idempotency key prefix
ARGV[3] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[4..] groups of four: task id, lease token, result JSON, outcome
Returns: one integer per task: 1 finished, 0 refused (not leased with this token).
A workflow member (record field `wf`) is settled in its workflow in the same call: the
  dependents whose last parent it was are released (lib/workflow.lua).
The finished record drops what only a queued or running task needs (score, ready_ms,
  lease_ms, result_ttl_s, token, cancel): it is kept for its result TTL, and less per record
  is less retained memory (docs/RELIABILITY.md, "Memory per finished task").
]]
--!include lib/common.lua
--!include lib/workflow.lua

local prefix, idem_prefix = ARGV[1], ARGV[2]
local now_ms, now_us = server_time()
local T = tel_open(KEYS, 2, ARGV[3], now_ms)
local out = {}
local done = {}
local workflows = {}
local now_arg = fmt(now_ms)  -- the text Redis would make of the number, made cheaper
for i = 4, #ARGV, 4 do
  local id, token, result, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 'token', 'status', 'started_ms', 'enqueued_ms', 'result_ttl_s',
    'priority', 'attempts', 'worker', 'idem', 'wf')
  if f[1] == token and f[2] == 'running' then
    redis.call('HSET', key, 'status', outcome, 'result', result, 'finished_ms', now_arg)
    -- the lease, queue-only fields, and an earlier attempt's error
    redis.call('HDEL', key, 'token', 'cancel', 'score', 'ready_ms', 'lease_ms', 'result_ttl_s',
      'error_type', 'error', 'traceback')
    done[#done + 1] = id
    tel_count(T, outcome, 1)
    if outcome == 'succeeded' then
      tel_observe(T, 'run', now_ms - tonumber(f[3]))
      tel_observe(T, 'e2e', now_ms - tonumber(f[4]))
    end
    tel_event(T, outcome, id, f[6], f[7], f[8])
    if f[10] then
      local payload = result
      if outcome ~= 'succeeded' then payload = wf_error(id, 'Cancelled', 'the task was cancelled while running') end
      wf_settle_task(workflows, f[10], id, outcome, payload, now_ms, now_us, ARGV[3])
    end
    -- a TTL recorded as a plain integer goes to EXPIRE as it is (no number to print)
    local ttl_text = f[5] and string.find(f[5], '^[1-9]%d?%d?%d?%d?%d?%d?%d?%d?%d?$') and f[5]
    expire_finished(key, idem_key_of(idem_prefix, f[9]), tonumber(f[5]), ttl_text)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #done > 0 then redis.call('ZREM', KEYS[1], unpack(done)) end
wf_close_all(workflows)
tel_flush(T)
return out
