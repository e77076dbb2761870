--[[ purge_dead: delete dead-letter tasks and their records for good.

KEYS[1] dead  KEYS[2] stats
ARGV[1] task key prefix  ARGV[2] idempotency key prefix
ARGV[3] mode: 'ids' (the ids in ARGV[5..]) or 'oldest' (up to ARGV[4])  ARGV[4] limit for 'oldest'
Returns: the number of tasks purged.
]]
--!include lib/common.lua

local prefix, idem_prefix = ARGV[1], ARGV[2]
local ids
if ARGV[3] == 'oldest' then
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
else
  ids = {}
  for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local purged = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    expire_record(prefix .. id, idem_prefix, 0)
    purged = purged + 1
  end
end
if purged > 0 then redis.call('HINCRBY', KEYS[2], 'purged', purged) end
return purged
