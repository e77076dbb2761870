--[[ promote_due: move scheduled tasks whose time has come (delays, retry backoff) to
  `queued`. Idempotent; claim.lua does the same before it pops.

KEYS[1] scheduled  KEYS[2] queued  KEYS[3] meta  KEYS[4] config  KEYS[5] events
ARGV[1] max tasks  ARGV[2] task key prefix  ARGV[3] events maxlen (0 = off)  ARGV[4] wake channel
Returns: {promoted, next_due_ms}: next_due_ms is the due time of the earliest task still
  scheduled, or -1 when none is.
]]
--!include lib/common.lua

local now_ms, now_us = server_time()
local promoted = promote_due(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], tonumber(ARGV[1]),
  tonumber(ARGV[3]), ARGV[4], now_ms, now_us)
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then next_due = tonumber(first[2]) end
return {promoted, next_due}
