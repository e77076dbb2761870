--[[ list_page: one page of the tasks in one place of a queue (read only), in the order of
  that place's sorted set (queued: claim order; scheduled: due time; running: lease deadline;
  dead: time of death), after a cursor. Equal scores are ordered by id, as Redis orders them,
  so the cursor (score, id) neither skips nor repeats a task that stays in the place.

KEYS[1] the place's sorted set (queued, scheduled, running or dead)
ARGV[1] task record key prefix  ARGV[2] cursor score, '-inf' from the start
ARGV[3] cursor id, '' from the start  ARGV[4] page size (>= 1)
Returns: {more (0|1), id, score, {record field, value, ...}, id, score, {...}, ...}; the record
  is {} where it has expired.
]]

local prefix, after_id, limit = ARGV[1], ARGV[3], tonumber(ARGV[4])
local after_score = after_id ~= '' and tonumber(ARGV[2]) or nil
local out = {0}
local taken, offset = 0, 0
local chunk = limit + 1
while true do
  local page = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', offset, chunk)
  for i = 1, #page, 2 do
    local id, score = page[i], page[i + 1]
    if after_score == nil or tonumber(score) > after_score or id > after_id then
      if taken == limit then
        out[1] = 1
        return out
      end
      taken = taken + 1
      out[#out + 1] = id
      out[#out + 1] = score
      out[#out + 1] = redis.call('HGETALL', prefix .. id)
    end
  end
  if #page < 2 * chunk then
    return out
  end
  offset = offset + chunk
end
