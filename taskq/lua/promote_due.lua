--[[ promote_due: move scheduled tasks whose time has come (delays, retry backoff) to
  `queued`. Idempotent; claim.lua does the same before it pops.

KEYS[1] scheduled  KEYS[2] queued  KEYS[3] config
KEYS[4..12] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] max tasks  ARGV[2] task key prefix
ARGV[3] telemetry settings "<events maxlen> <events sample> <windows 0|1>"  ARGV[4] wake (channel, or 'SPUBLISH <channel>')
Returns: {promoted, next_due_ms}: next_due_ms is the due time of the earliest task still
  scheduled, or -1 when none is.
]]
--!include lib/common.lua

local now_ms, now_us = server_time()
local promoted = 0
if redis.call('ZCOUNT', KEYS[1], '-inf', now_ms) > 0 then
  local T = tel_open(KEYS, 4, ARGV[3], now_ms)
  promoted = promote_due(KEYS[1], KEYS[2], KEYS[3], T, ARGV[2], tonumber(ARGV[1]), ARGV[4], now_ms, now_us)
  tel_flush(T)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then next_due = tonumber(first[2]) end
return {promoted, next_due}
