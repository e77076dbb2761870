-- Shared helpers, textually included by the scripts that need them
-- (taskq/scripts.py replaces the line `--!include lib/common.lua`).
-- Numbers that become Redis arguments are formatted with %.0f: scores reach 4e15,
-- beyond the 14 digits Lua's default number-to-string keeps.

-- Priority window when the queue has no aging setting: 2^48 us (about 8.9 years), so
-- a task would have to wait that long before a lower priority overtook it: strict.
local STRICT_WINDOW_US = 281474976710656

-- %d (a C long) prints a whole number as %.0f does, at well under half the cost; fractions,
-- infinities and NaN keep %.0f.
local function fmt(n)
  if n % 1 == 0 and n ~= 0 and n < 9e18 and n > -9e18 then return string.format('%d', n) end
  return string.format('%.0f', n)
end

-- Redis turns a Lua number given to redis.call into text with snprintf('%.17g'), which costs
-- about half of a cheap command; small integers (counts, priorities, attempts) go as the same
-- text from this table instead. (Each helper defined here costs every EVALSHA of every script
-- that includes it about 1 k instructions: the prelude is made again on each call. A Redis
-- Functions library makes it once, when loaded: taskq/scripts.py.)
local INT_TEXT = {'1', '2', '3', '4', '5', '6', '7', '8', '9', '10'}
local function int_arg(n)
  if n == 0 then return '0' end
  return INT_TEXT[n] or n
end

local function server_time()
  local t = redis.call('TIME')
  local s, us = tonumber(t[1]), tonumber(t[2])
  return s * 1000 + math.floor(us / 1000), s * 1000000 + us
end

-- ---------------------------------------------------------------------------------------
-- Telemetry: events, counters, latency histograms, window checkpoints and queued depth per
-- priority. A script opens one context (tel_open), records into it as it goes, and writes
-- it all at the end (tel_flush): one XADD per event type and EVENTS_PER_ENTRY events, one
-- HINCRBY per counter and priority touched, one BITFIELD per histogram. A batch of 1000
-- tasks costs a handful of writes, not thousands.
--
-- The telemetry keys always come as nine consecutive KEYS, in this order (keys.py,
-- QueueKeys.telemetry): meta, stats, events, checkpoints 1 s, checkpoints 10 s, depth,
-- then the histograms of queue wait, run time and end to end.
-- The telemetry ARGV is one string: "<events maxlen> <events sample 1-in-N> <windows 0|1>".

-- Log-spaced latency buckets: bucket b >= 1 holds values in [1.1^(b-1), 1.1^b) ms, bucket 0
-- holds values under 1 ms, the last bucket everything from 1.1^(MAX_BUCKET-1) ms (a year).
-- taskq/telemetry.py reads a bucket as its geometric midpoint, within 4.9 % of any value in
-- it. A histogram is a string of unsigned 48-bit big-endian counters, bucket b at byte 6b
-- (BITFIELD INCRBY u48 #b): cheap to increment, and one GET reads it whole.
-- LOG_STEP is math.log(1.1), written out: a Redis Functions library loads without `math`.
local LOG_STEP = 0.09531017980432493
local MAX_BUCKET = 255
local METRICS = {'wait', 'run', 'e2e'}
local function bucket_of(value_ms)
  if value_ms < 1 then return 0 end
  return math.min(MAX_BUCKET, math.floor(math.log(value_ms) / LOG_STEP) + 1)
end

-- Window checkpoints: before its first write in a new second, a script copies the queue's
-- cumulative counters and histograms into the 1-s checkpoint set, kept FINE_KEEP_S; the
-- first checkpoint of each COARSE_SLOT_S period also goes into the 10-s set, kept
-- COARSE_KEEP_S. A window's figures are now minus the checkpoint at its start (snapshot.lua).
-- A checkpoint is one sorted-set member (score: its second): a JSON header
-- {s, prev (the second of the previous checkpoint), c (counters), n (histogram lengths)},
-- a newline, then the three histogram strings.
local FINE_KEEP_S = 75
local COARSE_SLOT_S = 10
local COARSE_KEEP_S = 960
local EVENTS_PER_ENTRY = 100
-- High-volume event types that a sample rate N thins to about 1 task in N (the same tasks
-- for every type, so a sampled task's whole life is seen); other types are always written.
local SAMPLED = {enqueued = true, scheduled = true, queued = true, started = true, succeeded = true}

-- Copy the cumulative figures into a checkpoint, once per second (call before any write).
-- The same read fetches the queue's FIFO clock for ready_batch (one call, not two).
local function tel_checkpoint(T)
  local s = math.floor(T.now_ms / 1000)
  local m = redis.call('HMGET', T.meta, 'ckpt_s', 'clock')
  T.clock = m[2] or '0'
  local last = tonumber(m[1] or '-1')
  if last >= s then return end
  local counters = {}
  local flat = redis.call('HGETALL', T.stats)
  for i = 1, #flat, 2 do counters[flat[i]] = tonumber(flat[i + 1]) end
  local hists, lengths = {}, {}
  for i, metric in ipairs(METRICS) do
    hists[i] = redis.call('GET', T[metric]) or ''
    lengths[i] = #hists[i]
  end
  local point = cjson.encode({s = s, prev = last, c = counters, n = lengths}) .. '\n' .. table.concat(hists)
  redis.call('ZADD', T.fine, s, point)
  redis.call('ZREMRANGEBYSCORE', T.fine, '-inf', s - FINE_KEEP_S)
  redis.call('EXPIRE', T.fine, FINE_KEEP_S)
  if math.floor(last / COARSE_SLOT_S) ~= math.floor(s / COARSE_SLOT_S) then
    redis.call('ZADD', T.coarse, s, point)
    redis.call('ZREMRANGEBYSCORE', T.coarse, '-inf', s - COARSE_KEEP_S)
    redis.call('EXPIRE', T.coarse, COARSE_KEEP_S)
  end
  redis.call('HSET', T.meta, 'ckpt_s', s)
end

-- Open the telemetry context of one script call (before the script writes anything).
-- T[metric] is a histogram's key ('wait', 'run', 'e2e'). What a call records (counts,
-- observed, events, depths) gets its table on first use: every table a call makes costs
-- Redis CPU (making and collecting it).
local function tel_open(keys, first, settings, now_ms)
  local maxlen, sample, windows = string.match(settings, '^(%d+) (%d+) (%d)$')
  -- every field a call may set later is in the constructor (false until used): a field added
  -- to a full table makes Lua rebuild its hash part
  local T = {
    meta = keys[first], stats = keys[first + 1], events = keys[first + 2],
    fine = keys[first + 3], coarse = keys[first + 4], depth = keys[first + 5],
    wait = keys[first + 6], run = keys[first + 7], e2e = keys[first + 8],
    maxlen = tonumber(maxlen), maxlen_arg = maxlen, sample = sample ~= '1' and tonumber(sample) or 1,
    windows = windows == '1', now_ms = now_ms,
    clock = false, counts = false, observed = false, depths = false, types = false,
  }
  if T.windows then tel_checkpoint(T) end
  return T
end

local function tel_count(T, name, n)
  local counts = T.counts
  if not counts then
    T.counts = {[name] = n}
    return
  end
  counts[name] = (counts[name] or 0) + n
end

local function tel_observe(T, metric, value_ms)
  if not T.windows then return end
  local b = bucket_of(value_ms)
  local observed = T.observed
  if not observed then
    T.observed = {[metric] = {[b] = 1}}
    return
  end
  local counts = observed[metric]
  if not counts then
    observed[metric] = {[b] = 1}
    return
  end
  counts[b] = (counts[b] or 0) + 1
end

local function tel_depth(T, priority, n)
  local p = tonumber(priority)
  if not p then return end
  local depths = T.depths
  if not depths then
    T.depths = {[p] = n}
    return
  end
  depths[p] = (depths[p] or 0) + n
end

-- About 1 task in n, the same tasks every time: a cheap hash of four characters near the
-- end of the id (taskq ids end with random hex and two hex digits of the producer's pid).
local function sampled_in(id, n)
  local a, b, c, d = string.byte(id, -6, -3)
  return ((a or 0) * 1000003 + (b or 0) * 10007 + (c or 0) * 101 + (d or 0)) % n == 0
end

-- The events of one type are kept in one flat table, four values per event (id, priority,
-- attempt, worker), with `n` (how many) and `worker` (the first one's worker).
local function tel_event(T, etype, id, priority, attempt, worker)
  if T.maxlen <= 0 then return end
  if T.sample > 1 and SAMPLED[etype] and not sampled_in(id, T.sample) then return end
  if not priority or priority == '' then priority = '-' end
  if not attempt or attempt == '' then attempt = '-' end
  if not worker or worker == '' then worker = '-' end
  local types = T.types
  local e = types and types[etype]
  if not e then  -- the type's first event: its tables made whole (no growing)
    e = {id, priority, attempt, worker, n = 1, worker = worker, one_worker = true}
    if types then
      types[etype] = e
      types[#types + 1] = etype
    else
      T.types = {etype, [etype] = e}
    end
    return
  end
  local n = e.n + 1
  local at = 4 * n - 4
  e.n = n
  -- one at a time, in order (a multiple assignment stores right to left), so they go
  -- into the table's array part
  e[at + 1] = id
  e[at + 2] = priority
  e[at + 3] = attempt
  e[at + 4] = worker
  if worker ~= e.worker then e.one_worker = false end
end

-- Write everything recorded: counters always, histograms when windows are on, depth
-- always, events when on. An event entry holds up to EVENTS_PER_ENTRY events of one type as
-- space-separated lists (worker once when all share it); MAXLEN keeps about maxlen events.
local function tel_flush(T)
  if T.counts then
    for name, n in pairs(T.counts) do
      if n ~= 0 then redis.call('HINCRBY', T.stats, name, int_arg(n)) end
    end
  end
  if T.observed then
    for metric, counts in pairs(T.observed) do
      local ops = {}
      for b, n in pairs(counts) do
        ops[#ops + 1] = 'INCRBY'
        ops[#ops + 1] = 'u48'
        ops[#ops + 1] = '#' .. b
        ops[#ops + 1] = int_arg(n)
      end
      redis.call('BITFIELD', T[metric], unpack(ops))
    end
  end
  if T.depths then
    for p, n in pairs(T.depths) do
      if n ~= 0 then redis.call('HINCRBY', T.depth, int_arg(p), int_arg(n)) end
    end
  end
  if not T.types then return end
  for _, etype in ipairs(T.types) do
    local e = T.types[etype]
    for first = 1, e.n, EVENTS_PER_ENTRY do
      local last = math.min(e.n, first + EVENTS_PER_ENTRY - 1)
      local at = 4 * first - 4
      local ids, priorities, attempts, worker, maxlen = e[at + 1], e[at + 2], e[at + 3], e.worker, T.maxlen_arg
      if last > first then
        -- space-separated columns (numbers printed as table.concat does)
        local c1, c2, c3, c4 = {}, {}, {}, {}
        for i = first, last do
          at = 4 * i - 4
          c1[#c1 + 1], c2[#c2 + 1], c3[#c3 + 1], c4[#c4 + 1] = e[at + 1], e[at + 2], e[at + 3], e[at + 4]
        end
        ids, priorities, attempts = table.concat(c1, ' '), table.concat(c2, ' '), table.concat(c3, ' ')
        if not e.one_worker then worker = table.concat(c4, ' ') end
        maxlen = math.ceil(T.maxlen / (last - first + 1))
      else
        -- one event: its values as they are (a number as table.concat prints it: %.14g)
        if type(priorities) == 'number' then priorities = INT_TEXT[priorities] or tostring(priorities) end
        if type(attempts) == 'number' then attempts = INT_TEXT[attempts] or tostring(attempts) end
      end
      redis.call('XADD', T.events, 'MAXLEN', '~', maxlen, '*', 'type', etype, 'id', ids,
        'priority', priorities, 'attempt', attempts, 'worker', worker)
    end
  end
end

-- Tasks becoming ready (moving into `queued`) in one script form a batch. Each gets the
-- score clock + (10 - priority) * window, where clock is the queue's monotonic microsecond
-- clock (so FIFO holds even within one microsecond) and window is the aging window (strict
-- priority without one). ZPOPMIN takes the lowest score: highest priority first, oldest
-- first within a priority. The clock is read and written once, the ZADD is one call, and
-- the wake channel is published to when the queue was empty (a worker that found it empty
-- is then sure to hear of the first new task).
-- The queue's `meta` hash (the clock) and `depth` counters come from the telemetry context T.
-- The queue's default priority (config, else nil) comes with the aging window, for enqueue.
local function ready_batch(queued_key, config_key, T, now_us)
  local config = redis.call('HMGET', config_key, 'aging_us', 'default_priority')
  return {
    queued = queued_key, meta = T.meta, tel = T, now_us = now_us, members = {},
    clock = tonumber(T.clock or redis.call('HGET', T.meta, 'clock') or '0'),
    window = tonumber(config[1] or STRICT_WINDOW_US),
    default_priority = tonumber(config[2]),
  }
end

-- Add a task to the batch; returns its score (as a string) for the task record.
local function ready_add(batch, id, priority)
  local clock = batch.clock + 1
  if batch.now_us > clock then clock = batch.now_us end
  batch.clock = clock
  local score = fmt(clock + (10 - priority) * batch.window)
  batch.members[#batch.members + 1] = score
  batch.members[#batch.members + 1] = id
  tel_depth(batch.tel, priority, 1)
  return score
end

-- Wake the queue's workers. `wake` is the argument the scripts take for it: '' (no wake-up),
-- the channel (PUBLISH, one server), or 'SPUBLISH <channel>' (sharded pub/sub, on a Redis
-- Cluster: the message stays on the queue's shard). The client chooses (taskq.ops_base).
-- Returns how many subscribers received the message (0 with no wake-up).
local function wake_publish(wake, message)
  if wake == '' then return 0 end
  if string.sub(wake, 1, 9) == 'SPUBLISH ' then
    return redis.call('SPUBLISH', string.sub(wake, 10), message)
  end
  return redis.call('PUBLISH', wake, message)
end

-- Put the batch in `queued`; returns whether the queue was empty before (nil: nothing added).
local function ready_push(batch)
  if #batch.members == 0 then return nil end
  local was_empty = redis.call('ZCARD', batch.queued) == 0
  redis.call('ZADD', batch.queued, unpack(batch.members))
  local clock = fmt(batch.clock)
  redis.call('HSET', batch.meta, 'clock', clock)
  batch.tel.clock = clock
  return was_empty
end

local function ready_commit(batch, wake)
  if ready_push(batch) then wake_publish(wake, '1') end
end

-- ---------------------------------------------------------------------------------------
-- Leases. A task taken out of `queued` is leased in two steps: lease_read (its record's
-- fields, nil when the record is gone), then lease_write (the record says running, with the
-- worker, token and lease; telemetry). The caller adds it to `running`, scored by the lease's
-- deadline. A claim reply, and a hand-off message, carry per task: id, token, attempts, then
-- the first ten fields read, then meta (ops: _parse_claim).
local function lease_read(key)
  return redis.call('HMGET', key, 'name', 'args', 'kwargs', 'timeout_ms', 'max_retries',
    'retry_base_ms', 'retry_cap_ms', 'retry_min_ms', 'retry_jitter', 'priority', 'ready_ms', 'attempts', 'meta')
end

local function lease_write(T, key, id, f, token, worker, now_ms, now_text, lease_arg)
  local attempts = tonumber(f[12]) + 1
  redis.call('HSET', key, 'status', 'running', 'attempts', int_arg(attempts), 'started_ms', now_text,
    'worker', worker, 'token', token, 'lease_ms', lease_arg)
  tel_observe(T, 'wait', now_ms - tonumber(f[11] or now_ms))
  tel_depth(T, f[10], -1)
  tel_event(T, 'started', id, f[10], attempts, worker)
  return attempts
end

-- Append one leased task to a claim reply (or a hand-off message): id, token, attempts, the
-- first ten fields lease_read gave, then meta; a field the record leaves out is false (nil in
-- a reply). ops: _parse_claim reads them in this order.
local function lease_reply(out, id, token, attempts, f)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3] = id, token, attempts
  for j = 1, 10 do out[n + 3 + j] = f[j] end
  out[n + 14] = f[13]
  return out
end

-- A lease token's text: tostring prints %.14g, and fmt prints a whole number under 14 digits
-- the same, cheaper.
local function token_text(seq)
  if seq % 1 == 0 and seq < 1e14 and seq > -1e14 then return fmt(seq) end
  return tostring(seq)
end

-- The most tasks one hand-off registration takes (taskq/handoff.py SLOTS), and the names of
-- a worker's registration members, first to last.
local HANDOFF_SLOTS = 8

local function handoff_members(lease_arg, worker)
  local first = lease_arg .. ' ' .. worker
  local names = {first}
  for n = 2, HANDOFF_SLOTS do names[n] = first .. ' ' .. n end
  return names
end

-- Hand-off (taskq/handoff.py). A worker whose claim left a queue empty is registered in the
-- queue's `idle` ZSET, one member per task it may be handed (a free slot, up to
-- HANDOFF_SLOTS): "<lease ms> <worker id>", then "<lease ms> <worker id> 2", ... (handoff_members),
-- all scored by when the registration lapses.
-- A task queued into the empty queue is leased here, in the script that queued it, to such a
-- worker, and sent on the worker's own channel (the wake channel, ':', its id): it starts one
-- round trip sooner than after a wake-up and a claim. One member takes one task, the
-- freshest registration first (and of one registration, the first member last). The tasks one
-- worker is handed here go in one message, the fields of each as in a claim reply, one after
-- the other (two messages only when a registration not listening came between): the worker
-- has them all at once, so the claim it makes after a task starts (it lets each start before
-- it reads again) never takes the slot of one still on the way. A message
-- no subscriber received (PUBLISH counts them: the worker is gone or its connection dropped)
-- leases nothing: its tasks go back, the worker's other members go too, and the next
-- registration is tried. One that was received but never read (the worker was killed after)
-- loses nothing either: the leases run out and the reaper queues the tasks again.
-- Not on a queue with rate limits (the claim script applies them). `n`: how many tasks the
-- caller queued into the empty queue (so no pop looks for a task or a member that is not
-- needed). Returns whether tasks are left in `queued` (for the caller's wake-up) and how many
-- were handed off.
local function handoff(T, n, queued, running, idle, limits, wake, prefix, now_ms, now_text)
  if wake == '' or redis.call('EXISTS', limits) == 1 then return true, 0 end
  local handed = 0
  while n > 0 do  -- n: the tasks in `queued` (the caller's, into an empty queue) not yet handed
    local asked = n
    local ws = redis.call('ZPOPMAX', idle, int_arg(asked))  -- name, score, ...: the freshest first
    local i = 1
    while i < #ws do
      if tonumber(ws[i + 1]) <= now_ms then  -- lapsed: so did every member after it
        redis.call('DEL', idle)
        return n > 0, handed
      end
      local sp = string.find(ws[i], ' ', 1, true)
      local sp2 = string.find(ws[i], ' ', sp + 1, true)  -- a worker id has no whitespace
      local lease_arg, worker = string.sub(ws[i], 1, sp - 1), string.sub(ws[i], sp + 1, (sp2 or 0) - 1)
      local first = lease_arg .. ' ' .. worker
      local more = first .. ' '  -- the names of its members after the first begin so
      local j = i  -- this worker's members run from ws[i] to ws[j] (one score, names in order)
      while j + 2 < #ws and tonumber(ws[j + 3]) > now_ms
        and (ws[j + 2] == first or string.sub(ws[j + 2], 1, #more) == more) do
        j = j + 2
      end
      local k = (j - i) / 2 + 1
      local popped = redis.call('ZPOPMIN', queued, int_arg(k))
      local count = #popped / 2
      local last = redis.call('HINCRBY', T.meta, 'lease_seq', int_arg(count))
      local msg, got = {}, {}
      for p = 1, count do
        local id = popped[2 * p - 1]
        local key = prefix .. id
        local f = lease_read(key)
        if f[1] then  -- a task with no record (never, with fresh ids) takes no one's member
          local token = token_text(last - count + p)
          lease_reply(msg, id, token, tonumber(f[12]) + 1, f)
          got[#got + 1] = {id, popped[2 * p], key, f, token}
        end
      end
      local taken = 0  -- of this worker's members: those used up
      if #got > 0 and wake_publish(wake .. ':' .. worker, cjson.encode(msg)) > 0 then
        for _, g in ipairs(got) do
          lease_write(T, g[3], g[1], g[4], g[5], worker, now_ms, now_text, lease_arg)
          redis.call('ZADD', running, now_ms + tonumber(lease_arg), g[1])
        end
        handed, n, taken = handed + #got, n - count, #got
      elseif #got > 0 then  -- not listening: nor will its other members be
        for _, g in ipairs(got) do redis.call('ZADD', queued, g[2], g[1]) end
        redis.call('ZREM', idle, unpack(handoff_members(lease_arg, worker)))
        n, taken = n - (count - #got), k
      else
        n = n - count
      end
      for m = i + 2 * taken, j, 2 do redis.call('ZADD', idle, ws[m + 1], ws[m]) end  -- not taken
      if count < k then  -- fewer tasks than counted (never, see above): the rest of ws goes back
        for m = j + 2, #ws, 2 do redis.call('ZADD', idle, ws[m + 1], ws[m]) end
        return redis.call('EXISTS', queued) == 1, handed  -- (a worker not listening put some back)
      end
      i = j + 2
    end
    if #ws < 2 * asked then return n > 0, handed end  -- no member left
  end
  return false, handed
end

-- A newly scheduled task that is now the earliest one changes when workers must wake.
local function wake_if_earliest(scheduled_key, id, wake)
  if wake ~= '' and redis.call('ZRANGE', scheduled_key, 0, 0)[1] == id then
    wake_publish(wake, '0')
  end
end

-- Finished records expire after their TTL, and so does their idempotency key (0: at once).
-- `ttl_text`: the TTL as the record holds it, when it is that (saves converting the number).
local function expire_finished(task_key, idem_key, ttl_s, ttl_text)
  if ttl_s <= 0 then
    redis.call('DEL', task_key)
    if idem_key then redis.call('DEL', idem_key) end
  else
    local ttl = ttl_text or ttl_s
    redis.call('EXPIRE', task_key, ttl)
    if idem_key then redis.call('EXPIRE', idem_key, ttl) end
  end
end

-- The idempotency key named by a task record's `idem` field ('' or missing: none).
local function idem_key_of(idem_prefix, idem)
  if idem and idem ~= '' then return idem_prefix .. idem end
  return nil
end

local function expire_record(task_key, idem_prefix, ttl_s)
  expire_finished(task_key, idem_key_of(idem_prefix, redis.call('HGET', task_key, 'idem')), ttl_s)
end

-- Move up to `limit` due scheduled tasks to queued. Returns how many moved.
local function promote_due(scheduled_key, queued_key, config_key, T, task_prefix, limit, wake, now_ms, now_us)
  local due = redis.call('ZRANGEBYSCORE', scheduled_key, '-inf', now_ms, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  local batch = ready_batch(queued_key, config_key, T, now_us)
  for _, id in ipairs(due) do
    local task_key = task_prefix .. id
    local priority = redis.call('HGET', task_key, 'priority')
    if priority then
      local score = ready_add(batch, id, tonumber(priority))
      redis.call('HSET', task_key, 'status', 'queued', 'score', score, 'ready_ms', now_ms)
      tel_event(T, 'queued', id, priority, nil, nil)
    end
  end
  redis.call('ZREM', scheduled_key, unpack(due))
  ready_commit(batch, wake)
  return #due
end

-- The ids a dead-letter operation applies to: mode 'oldest' takes up to `limit` from the
-- front of the sorted set; mode 'ids' takes the script's arguments args[first_id_arg..]
-- (passed in: a Redis function has no ARGV global).
local function select_ids(zset_key, mode, limit, args, first_id_arg)
  if mode == 'oldest' then
    return redis.call('ZRANGE', zset_key, 0, tonumber(limit) - 1)
  end
  local ids = {}
  for i = first_id_arg, #args do ids[#ids + 1] = args[i] end
  return ids
end
