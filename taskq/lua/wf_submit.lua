--[[ wf_submit: add nodes to a workflow (a new one, or the one their parents belong to) in one
  step: the bookkeeping (lib/workflow.lua), every new task record, and the nodes that wait for
  nobody go straight to their queues. A parent may be an existing task outside this call
  (tq.enqueue(..., depends_on=[...])): it is adopted into the workflow, and when it already
  ended its outcome counts at once.

KEYS[1] meta  KEYS[2..8] the workflow's other keys: nodes, parents, children, queues, pending, settled, results
ARGV[1] workflow key prefix W  ARGV[2] workflow id
ARGV[3] telemetry settings "<events maxlen> <events sample> <windows 0|1>" (lib/common.lua)
ARGV[4] retention s (the workflow's keys expire that long after its last node settled)
ARGV[5] JSON object: queue -> its key names {t, i, queued, scheduled, config, tel, wake}
  (every queue of a new node or of an outside parent)
ARGV[6] outside parents, space-separated ('' none)
ARGV[7..] groups of 17 per new node, parents before children: id, queue, feed, policy,
  parent ids (space-separated), name, args JSON, kwargs JSON ('' for {}), priority ('' default),
  max_retries, timeout ms ('' none), result TTL s, retry base ms, retry cap ms, retry min ms,
  retry jitter ('' each: default backoff), meta JSON ('' none)
Returns: the number of nodes queued at once.
Errors: TASKQ NOT_FOUND (an outside parent does not exist), TASKQ WF_CHANGED (an outside parent
  belongs to another live workflow than W: the caller read it before someone else adopted it),
  TASKQ INVALID (a parent named after its child, or an unknown parent: no cycles).
]]
--!include lib/common.lua
--!include lib/workflow.lua

local W, wf_id, retention = ARGV[1], ARGV[2], tonumber(ARGV[4])
local FIELDS = 17
local queues = cjson.decode(ARGV[5])

-- 1. Check everything before writing anything.
local outside = {}
local outside_status = {}
for pid in string.gmatch(ARGV[6], '%S+') do
  local queue = string.match(pid, '^([^:]+):')
  local q = queue and queues[queue]
  if not q then return redis.error_reply('TASKQ NOT_FOUND no task ' .. pid) end
  local f = redis.call('HMGET', q.t .. pid, 'status', 'wf')
  if not f[1] then
    return redis.error_reply('TASKQ NOT_FOUND no task ' .. pid .. ': it never existed, or its record expired')
  end
  if f[2] and f[2] ~= W and redis.call('EXISTS', f[2] .. 'meta') == 1 then
    return redis.error_reply('TASKQ WF_CHANGED task ' .. pid .. ' belongs to another workflow')
  end
  outside[#outside + 1] = pid
  outside_status[pid] = {queue = queue, status = f[1], member = f[2] == W}
end
local seen = {}
for _, pid in ipairs(outside) do seen[pid] = true end
for i = 7, #ARGV, FIELDS do
  local id = ARGV[i]
  if seen[id] then return redis.error_reply('TASKQ DUPLICATE_ID task id ' .. id .. ' is used twice') end
  for p in string.gmatch(ARGV[i + 4], '%S+') do
    if not seen[p] then
      return redis.error_reply('TASKQ INVALID node ' .. id .. ' depends on ' .. p ..
        ', which is neither an earlier node nor an existing task (a cycle?)')
    end
  end
  seen[id] = true
end

local now_ms, now_us = server_time()
local fresh = redis.call('HEXISTS', W .. 'meta', 'id') == 0

-- 2. The workflow itself (a finished one that gets new nodes runs again).
if fresh then
  redis.call('HSET', W .. 'meta', 'id', wf_id, 'state', 'running', 'total', 0, 'created_ms', now_ms,
    'retention_s', retention)
end
local ctx = wf_open(W, now_ms, now_us, ARGV[3])
local K = ctx.K
if not fresh then
  for _, key in pairs(K) do redis.call('PERSIST', key) end
  local m = redis.call('HMGET', K.meta, 'state', 'retention_s')
  if tonumber(m[2] or '0') < retention then redis.call('HSET', K.meta, 'retention_s', retention) end
  if m[1] ~= 'running' then redis.call('HSET', K.meta, 'state', 'running') end
end
for queue, q in pairs(queues) do redis.call('HSET', K.queues, queue, cjson.encode(q)) end

-- 3. Adopt outside parents that are not members yet.
local adopted_ended = {}
for _, pid in ipairs(outside) do
  local o = outside_status[pid]
  if not o.member then
    redis.call('HSET', queues[o.queue].t .. pid, 'wf', W)
    redis.call('HSET', K.nodes, pid, o.queue .. ' none fail')
    redis.call('HINCRBY', K.meta, 'total', 1)
    if o.status == 'succeeded' or o.status == 'dead' or o.status == 'cancelled' then
      adopted_ended[#adopted_ended + 1] = pid
    end
  end
end

-- 4. The new nodes: records, edges, pending counts, written in bulk. A node with no parent and
-- nothing to be fed goes straight into its queue; every other one waits (status waiting).
local function hset_chunks(key, flat)
  for first = 1, #flat, 1000 do redis.call('HSET', key, unpack(flat, first, math.min(#flat, first + 999))) end
end
local new = {}
local in_call = {}
local kids_of, kid_parents = {}, {}
local node_pairs, parent_pairs, pending_pairs = {}, {}, {}
local queued = 0
for i = 7, #ARGV, FIELDS do
  local id, queue, feed, policy, parents = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local q = wf_queue(ctx, queue)
  if q.default_priority == nil then
    q.default_priority = tonumber(redis.call('HGET', q.config, 'default_priority') or '5')
  end
  local priority = tonumber(ARGV[i + 8]) or q.default_priority
  local count = 0
  for p in string.gmatch(parents, '%S+') do
    count = count + 1
    if not kids_of[p] then
      kids_of[p] = {}
      kid_parents[#kid_parents + 1] = p
    end
    table.insert(kids_of[p], id)
  end
  local rec = {'name', ARGV[i + 5], 'args', ARGV[i + 6], 'priority', priority,
    'attempts', 0, 'max_retries', ARGV[i + 9], 'result_ttl_s', ARGV[i + 11], 'enqueued_ms', now_ms,
    'ready_ms', now_ms, 'status', 'waiting', 'wf', W}
  local n = #rec
  local at_once = count == 0 and feed == 'none'
  if at_once then
    if not q.batch then q.batch = ready_batch(q.queued, q.config, q.T, now_us) end
    rec[n - 2] = 'queued'
    rec[n + 1], rec[n + 2], n = 'score', ready_add(q.batch, id, priority), n + 2
  end
  local kwargs, timeout = ARGV[i + 7], ARGV[i + 10]
  if kwargs ~= '' and kwargs ~= '{}' then rec[n + 1], rec[n + 2], n = 'kwargs', kwargs, n + 2 end
  if timeout ~= '' and timeout ~= '0' then rec[n + 1], rec[n + 2], n = 'timeout_ms', timeout, n + 2 end
  if ARGV[i + 12] ~= '' then
    rec[n + 1], rec[n + 2], rec[n + 3], rec[n + 4] = 'retry_base_ms', ARGV[i + 12], 'retry_cap_ms', ARGV[i + 13]
    rec[n + 5], rec[n + 6], rec[n + 7], rec[n + 8] = 'retry_min_ms', ARGV[i + 14], 'retry_jitter', ARGV[i + 15]
    n = n + 8
  end
  if ARGV[i + 16] ~= '' then rec[n + 1], rec[n + 2] = 'meta', ARGV[i + 16] end
  redis.call('HSET', q.t .. id, unpack(rec))
  tel_count(q.T, 'enqueued', 1)
  tel_event(q.T, 'enqueued', id, priority, 0, nil)
  if at_once then
    tel_event(q.T, 'queued', id, priority, 0, nil)
    queued = queued + 1
    if #q.batch.members >= 2000 then  -- one ZADD of at most 1000 tasks (unpack() has a limit)
      ready_commit(q.batch, q.wake)
      q.batch = nil
    end
  end
  node_pairs[#node_pairs + 1], node_pairs[#node_pairs + 2] = id, queue .. ' ' .. feed .. ' ' .. policy
  if count > 0 then parent_pairs[#parent_pairs + 1], parent_pairs[#parent_pairs + 2] = id, parents end
  pending_pairs[#pending_pairs + 1], pending_pairs[#pending_pairs + 2] = id, count
  new[#new + 1] = {id, parents, count, at_once}
  in_call[id] = true
end
hset_chunks(K.nodes, node_pairs)
hset_chunks(K.parents, parent_pairs)
hset_chunks(K.pending, pending_pairs)
local child_pairs = {}
for _, p in ipairs(kid_parents) do  -- one write per parent, however many children it got
  local kids = table.concat(kids_of[p], ' ')
  if not in_call[p] then
    local before = redis.call('HGET', K.children, p)
    if before then kids = before .. ' ' .. kids end
  end
  child_pairs[#child_pairs + 1], child_pairs[#child_pairs + 2] = p, kids
end
hset_chunks(K.children, child_pairs)
redis.call('HINCRBY', K.meta, 'total', #new)

-- 5. Edges from parents that had already ended, then the nodes nobody holds back.
for _, pid in ipairs(adopted_ended) do
  local o = outside_status[pid]
  local f = redis.call('HMGET', queues[o.queue].t .. pid, 'result', 'error_type', 'error')
  local payload = f[1] or 'null'
  if o.status ~= 'succeeded' then payload = wf_error(pid, f[2] or 'Cancelled', f[3] or o.status) end
  wf_settle(ctx, pid, o.status, payload)
end
for _, item in ipairs(new) do
  for p in string.gmatch(item[2], '%S+') do
    local before = outside_status[p]
    local outcome = before and before.member and redis.call('HGET', K.settled, p)
    if outcome then
      local cancelled = wf_edge(ctx, p, outcome, item[1])
      if cancelled then wf_settle(ctx, cancelled[1], cancelled[2], cancelled[3]) end
    end
  end
end
for _, item in ipairs(new) do  -- a root fed by nobody still needs its (empty) list
  if item[3] == 0 and not item[4] then
    wf_release(ctx, item[1], wf_node(ctx, item[1]))
    queued = queued + 1
  end
end
ctx.touched = true
wf_close(ctx)
return queued
