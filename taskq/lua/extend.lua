--[[ extend: the worker's heartbeat for its running tasks. Pushes each lease deadline
  forward if the worker still holds the lease, and reports cancellation requests.

KEYS[1] running
ARGV[1] lease ms  ARGV[2] task key prefix  ARGV[3..] pairs of (task id, lease token)
Returns: one integer per pair: 1 extended, 2 extended and cancellation requested,
  0 lease lost (the task was requeued or finished elsewhere: drop it).
]]
--!include lib/common.lua

local now_ms = server_time()
local deadline = now_ms + tonumber(ARGV[1])
local out = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', ARGV[2] .. id, 'token', 'status', 'cancel')
  if f[1] == token and f[2] == 'running' and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    if f[3] == '1' then out[#out + 1] = 2 else out[#out + 1] = 1 end
  else
    out[#out + 1] = 0
  end
end
return out
