--[[ wf_cancel: cancel a workflow. Every node that has not run (waiting, queued, scheduled) is
  cancelled at once and no dependent is released any more; a running node gets its abort flag
  (its worker stops it at the next heartbeat and its outcome then settles it).

KEYS[1] meta  KEYS[2..8] the workflow's other keys: nodes, parents, children, queues, pending, settled, results
ARGV[1] workflow key prefix W
ARGV[2] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
Returns: {cancelled now, running flagged}.
Errors: TASKQ NOT_FOUND (no such workflow, or its retention passed).
]]
--!include lib/common.lua
--!include lib/workflow.lua

if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('TASKQ NOT_FOUND no workflow ' .. ARGV[1] .. ': it never existed, or its retention passed')
end
local now_ms, now_us = server_time()
redis.call('HSET', KEYS[1], 'cancel', '1')
local ctx = wf_open(ARGV[1], now_ms, now_us, ARGV[2])
local flat = redis.call('HGETALL', KEYS[2])
local before = redis.call('HLEN', KEYS[7])
local flagged = 0
for i = 1, #flat, 2 do
  local id = flat[i]
  if not redis.call('HGET', KEYS[7], id) then
    local node = wf_node(ctx, id)
    local q = wf_queue(ctx, node.queue)
    if wf_cancel_node(ctx, id, node, 'WorkflowCancelled', 'the workflow was cancelled') then
      wf_settle(ctx, id, 'cancelled', wf_error(id, 'WorkflowCancelled', 'the workflow was cancelled'))
    else
      local f = redis.call('HMGET', q.t .. id, 'status', 'priority', 'attempts')
      if f[1] == 'running' then
        redis.call('HSET', q.t .. id, 'cancel', '1')
        tel_event(q.T, 'cancel_requested', id, f[2], f[3], nil)
        flagged = flagged + 1
      end
    end
  end
end
ctx.touched = true
wf_close(ctx)
return {redis.call('HLEN', KEYS[7]) - before, flagged}
