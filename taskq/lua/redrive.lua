--[[ redrive: move dead-letter tasks back to `queued` with a fresh set of attempts, and
  without the error, message and traceback of the attempt that killed them.

KEYS[1] dead  KEYS[2] queued  KEYS[3] config
KEYS[4..12] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] task key prefix  ARGV[2] idempotency key prefix
ARGV[3] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[4] wake (channel, or 'SPUBLISH <channel>')  ARGV[5] mode: 'ids' (the ids in ARGV[7..]) or 'oldest' (up to ARGV[6])
ARGV[6] limit for 'oldest'
Returns: the ids re-driven (ids not in the dead-letter queue are skipped).
]]
--!include lib/common.lua

local prefix, idem_prefix, wake = ARGV[1], ARGV[2], ARGV[4]
local ids = select_ids(KEYS[1], ARGV[5], ARGV[6], ARGV, 7)
local now_ms, now_us = server_time()
local T = tel_open(KEYS, 4, ARGV[3], now_ms)
local ready = ready_batch(KEYS[2], KEYS[3], T, now_us)
local out = {}
for _, id in ipairs(ids) do
  local key = prefix .. id
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local f = redis.call('HMGET', key, 'priority', 'idem')
    if f[1] then
      redis.call('PERSIST', key)
      local idem_key = idem_key_of(idem_prefix, f[2])
      if idem_key then redis.call('PERSIST', idem_key) end
      local score = ready_add(ready, id, tonumber(f[1]))
      redis.call('HSET', key, 'attempts', 0, 'status', 'queued', 'score', score, 'ready_ms', now_ms)
      -- The old failure is cleared here, not in complete.lua: a re-drive starts the task's life
      -- over (attempts 0), so the error belongs to the previous life and would mislead while
      -- the task is queued or running again and after it succeeds; and this keeps the hot
      -- success path (complete.lua) as it is, and a retried task's last error until it ends.
      redis.call('HDEL', key, 'finished_ms', 'due_ms', 'error_type', 'error', 'traceback')
      tel_event(T, 'redriven', id, f[1], 0, nil)
      out[#out + 1] = id
    end
  end
end
ready_commit(ready, wake)
tel_count(T, 'redriven', #out)
tel_flush(T)
return out
