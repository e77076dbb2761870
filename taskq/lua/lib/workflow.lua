-- Workflow bookkeeping (chains, groups with a callback, depends_on DAGs), included after
-- lib/common.lua by the scripts that end tasks (complete, fail, cancel, requeue_expired) and
-- by wf_submit.lua / wf_cancel.lua. docs/ARCHITECTURE.md, "Workflows".
--
-- A workflow's keys share the hash tag {wf:<id>} (keys.py, WorkflowKeys); W is their prefix,
-- stored in each member's task record as the field `wf`:
--   W..meta      HASH  id, state, total, n_failed (nodes that ended other than succeeded),
--                      created_ms, finished_ms, retention_s, cancel ('1' once cancelled)
--   W..nodes     HASH  task id -> "<queue> <feed> <policy>": feed none | prev (the single
--                      parent's result goes first in the args) | all (the list of the parents'
--                      results, in order); policy fail (a failed parent cancels the node) | pass
--                      (the failure goes into that list as {"error_type", "error", "task_id"})
--   W..parents   HASH  task id -> parent ids, space-separated, in order
--   W..children  HASH  task id -> child ids, space-separated
--   W..queues    HASH  queue -> JSON of that queue's key names (built by keys.py)
--   W..pending   HASH  task id -> parents not settled yet
--   W..settled   HASH  task id -> final outcome (succeeded, dead, cancelled): HSETNX, so a
--                      task is counted once however often it retried or was re-driven
--   W..results   HASH  task id -> result JSON (or the error object), kept for the callbacks
--                      even when the member's own record expires first
-- The script that settles the last parent of a node releases it (into its queue) in the same
-- call; a crash between "member done" and "callback queued" is therefore impossible.

local WF_SUFFIXES = {'meta', 'nodes', 'parents', 'children', 'queues', 'pending', 'settled', 'results'}

local function wf_error(id, etype, message)
  return cjson.encode({error_type = etype or '', error = message or '', task_id = id})
end

-- One context per workflow per script call: caches each queue's keys, telemetry context and
-- ready batch; wf_close writes them.
-- Returns nil when the workflow's keys are gone (its retention passed).
local function wf_open(W, now_ms, now_us, tel_settings)
  local K = {}
  for _, s in ipairs(WF_SUFFIXES) do K[s] = W .. s end
  local m = redis.call('HMGET', K.meta, 'id', 'cancel')
  if not m[1] then return nil end
  local nowin = string.gsub(tel_settings, '%d$', '0')
  return {W = W, K = K, now_ms = now_ms, now_us = now_us, tel = nowin, queues = {}, order = {},
    cancelled = m[2] == '1', touched = false}
end

local function wf_queue(ctx, queue)
  local q = ctx.queues[queue]
  if not q then
    q = cjson.decode(redis.call('HGET', ctx.K.queues, queue))
    q.T = tel_open(q.tel, 1, ctx.tel, ctx.now_ms)
    ctx.queues[queue] = q
    ctx.order[#ctx.order + 1] = q
  end
  return q
end

local function wf_node(ctx, id)
  local raw = redis.call('HGET', ctx.K.nodes, id)
  if not raw then return nil end
  local queue, feed, policy = string.match(raw, '^(%S+) (%S+) (%S+)$')
  return {queue = queue, feed = feed, policy = policy}
end

-- A waiting node whose parents all settled goes to its queue, with its parents' results in
-- front of its own arguments when its feed says so. JSON is spliced as text: no re-encoding.
local function wf_release(ctx, id, node)
  local q = wf_queue(ctx, node.queue)
  local key = q.t .. id
  local f = redis.call('HMGET', key, 'status', 'args', 'priority')
  if f[1] ~= 'waiting' then return end
  local args = nil
  if node.feed ~= 'none' then
    local parents = {}
    for p in string.gmatch(redis.call('HGET', ctx.K.parents, id) or '', '%S+') do parents[#parents + 1] = p end
    local lead = 'null'
    if #parents > 0 then
      local results = {}
      for first = 1, #parents, 1000 do  -- unpack() is limited to a few thousand values
        local got = redis.call('HMGET', ctx.K.results, unpack(parents, first, math.min(#parents, first + 999)))
        for j = 1, #got do results[#results + 1] = got[j] or 'null' end
      end
      if node.feed == 'prev' then lead = results[1] else lead = '[' .. table.concat(results, ',') .. ']' end
    elseif node.feed == 'all' then
      lead = '[]'
    end
    local inner = string.match(f[2] or '[]', '^%s*%[(.*)%]%s*$') or ''
    args = '[' .. lead .. ']'
    if string.find(inner, '%S') then args = '[' .. lead .. ',' .. inner .. ']' end
  end
  if not q.batch then q.batch = ready_batch(q.queued, q.config, q.T, ctx.now_us) end
  local score = ready_add(q.batch, id, tonumber(f[3]))
  if args then
    redis.call('HSET', key, 'status', 'queued', 'score', score, 'ready_ms', ctx.now_ms, 'args', args)
  else
    redis.call('HSET', key, 'status', 'queued', 'score', score, 'ready_ms', ctx.now_ms)
  end
  tel_event(q.T, 'queued', id, f[3], 0, nil)
  if #q.batch.members >= 2000 then  -- one ZADD of at most 1000 tasks (unpack() has a limit)
    ready_commit(q.batch, q.wake)
    q.batch = nil
  end
end

-- Cancel a node that has not run (waiting, queued or scheduled), with its cause. Returns
-- true when it was cancelled here.
local function wf_cancel_node(ctx, id, node, etype, cause)
  local q = wf_queue(ctx, node.queue)
  local key = q.t .. id
  local f = redis.call('HMGET', key, 'status', 'priority', 'attempts', 'result_ttl_s')
  local status = f[1]
  if status ~= 'waiting' and status ~= 'queued' and status ~= 'scheduled' then return false end
  if status == 'queued' and redis.call('ZREM', q.queued, id) == 1 then tel_depth(q.T, f[2], -1) end
  if status == 'scheduled' then redis.call('ZREM', q.scheduled, id) end
  redis.call('HSET', key, 'status', 'cancelled', 'finished_ms', ctx.now_ms, 'error_type', etype, 'error', cause)
  tel_count(q.T, 'cancelled', 1)
  tel_event(q.T, 'cancelled', id, f[2], f[3], nil)
  expire_record(key, q.i, tonumber(f[4]))
  return true
end

-- One edge parent -> child after the parent settled with `outcome`. Returns a work item when
-- the child was cancelled (its own children must hear of it).
local function wf_edge(ctx, parent, outcome, child)
  if not ctx.cancelled and outcome == 'succeeded' then  -- the common case: one write per edge
    if redis.call('HINCRBY', ctx.K.pending, child, -1) <= 0 then wf_release(ctx, child, wf_node(ctx, child)) end
    return nil
  end
  local node = wf_node(ctx, child)
  if not node then return nil end
  if not ctx.cancelled and node.policy == 'pass' then
    if redis.call('HINCRBY', ctx.K.pending, child, -1) <= 0 then wf_release(ctx, child, node) end
    return nil
  end
  local etype, cause = 'ParentFailed', 'parent ' .. parent .. ' ' .. outcome
  if ctx.cancelled then etype, cause = 'WorkflowCancelled', 'the workflow was cancelled' end
  if wf_cancel_node(ctx, child, node, etype, cause) then
    return {child, 'cancelled', wf_error(child, etype, cause)}
  end
  return nil
end

-- Task `id` ended for good: record it once, then release or cancel its children, and so on
-- down the graph (iteratively).
local function wf_settle(ctx, id, outcome, payload)
  local work = {{id, outcome, payload}}
  local i = 1
  while i <= #work do
    local nid, out, data = work[i][1], work[i][2], work[i][3]
    i = i + 1
    if redis.call('HSETNX', ctx.K.settled, nid, out) == 1 then
      ctx.touched = true
      redis.call('HSET', ctx.K.results, nid, data)
      if out ~= 'succeeded' then redis.call('HINCRBY', ctx.K.meta, 'n_failed', 1) end
      for child in string.gmatch(redis.call('HGET', ctx.K.children, nid) or '', '%S+') do
        local item = wf_edge(ctx, nid, out, child)
        if item then work[#work + 1] = item end
      end
    end
  end
end

-- Write what the context gathered; when every node has settled, the workflow is finished
-- and its keys expire after its retention.
local function wf_close(ctx)
  for _, q in ipairs(ctx.order) do
    if q.batch then ready_commit(q.batch, q.wake) end
    tel_flush(q.T)
  end
  if not ctx.touched then return end
  local m = redis.call('HMGET', ctx.K.meta, 'total', 'n_failed', 'retention_s', 'state')
  local total = tonumber(m[1] or '0')
  if m[4] == 'running' and redis.call('HLEN', ctx.K.settled) >= total then
    local state = 'failed'
    if tonumber(m[2] or '0') == 0 then state = 'succeeded' elseif ctx.cancelled then state = 'cancelled' end
    redis.call('HSET', ctx.K.meta, 'state', state, 'finished_ms', ctx.now_ms)
    local ttl = tonumber(m[3] or '86400')
    for _, key in pairs(ctx.K) do
      if ttl <= 0 then redis.call('DEL', key) else redis.call('EXPIRE', key, ttl) end
    end
  end
end

-- For the scripts that end tasks: one context per workflow touched in this call, kept in
-- `touched` (a table the script makes per call: W -> context, and the contexts in order). Not
-- a table of this file's: in a Redis Functions library that would outlive the call.
local function wf_settle_task(touched, W, id, outcome, payload, now_ms, now_us, tel_settings)
  if not W or W == '' then return end
  local ctx = touched[W]
  if not ctx then
    ctx = wf_open(W, now_ms, now_us, tel_settings)
    if not ctx then return end  -- retention passed
    touched[W] = ctx
    touched[#touched + 1] = ctx
  end
  wf_settle(ctx, id, outcome, payload)
end

local function wf_close_all(touched)
  for _, ctx in ipairs(touched) do wf_close(ctx) end
end
