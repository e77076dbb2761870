--[[ inspect: a read-only look at one queue's sorted sets, as one consistent picture (writes
  nothing). For each place, its size and its first members in the order they will leave it
  (queued: claim order; scheduled: due time; running: lease deadline; dead: time of death),
  each with its score and the task record fields a teaching view needs.

KEYS[1] queued  KEYS[2] scheduled  KEYS[3] running  KEYS[4] dead  KEYS[5] config
ARGV[1] task key prefix  ARGV[2] members listed per place (>= 1)
Returns: {server time ms, server time us, aging window us ('' when strict),
  {total, id, score, fields, id, score, fields, ...} for queued, then scheduled, running and
  dead; fields is {name, priority, attempts, worker, token, started_ms, error_type, lease_ms} (each
  false where the record lacks it, all false where the record has expired)}
]]
--!include lib/common.lua

local prefix, limit = ARGV[1], tonumber(ARGV[2])
local now_ms, now_us = server_time()
local FIELDS = {'name', 'priority', 'attempts', 'worker', 'token', 'started_ms', 'error_type', 'lease_ms'}

local function place(key)
  local out = {redis.call('ZCARD', key)}
  local page = redis.call('ZRANGE', key, 0, limit - 1, 'WITHSCORES')
  for i = 1, #page, 2 do
    out[#out + 1] = page[i]
    out[#out + 1] = page[i + 1]
    out[#out + 1] = redis.call('HMGET', prefix .. page[i], unpack(FIELDS))
  end
  return out
end

return {
  now_ms, fmt(now_us), redis.call('HGET', KEYS[5], 'aging_us') or '',
  place(KEYS[1]), place(KEYS[2]), place(KEYS[3]), place(KEYS[4]),
}
