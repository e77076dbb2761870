--[[ purge_dead: delete dead-letter tasks and their records for good, with a `purged` event
for each task deleted (so event readers see it leave the dead-letter queue).

KEYS[1] dead
KEYS[2..10] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] task key prefix  ARGV[2] idempotency key prefix
ARGV[3] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[4] mode: 'ids' (the ids in ARGV[6..]) or 'oldest' (up to ARGV[5])  ARGV[5] limit for 'oldest'
Returns: the number of tasks purged (ids not in the dead-letter queue are skipped, no event).
]]
--!include lib/common.lua

local prefix, idem_prefix = ARGV[1], ARGV[2]
local ids = select_ids(KEYS[1], ARGV[4], ARGV[5], ARGV, 6)
local T = tel_open(KEYS, 2, ARGV[3], server_time())
local purged = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local key = prefix .. id
    -- Read before deleting: the event carries the priority and attempts the task died with
    -- (both '-' when its record had already expired while the id stayed in the index).
    local f = redis.call('HMGET', key, 'priority', 'attempts', 'idem')
    expire_finished(key, idem_key_of(idem_prefix, f[3]), 0)
    tel_event(T, 'purged', id, f[1], f[2], nil)
    purged = purged + 1
  end
end
tel_count(T, 'purged', purged)
tel_flush(T)
return purged
