-- Shared helpers, textually included by the scripts that need them
-- (taskq/scripts.py replaces the line `--!include lib/common.lua`).
-- Numbers that become Redis arguments are formatted with %.0f: scores reach 4e15,
-- beyond the 14 digits Lua's default number-to-string keeps.

-- Priority window when the queue has no aging setting: 2^48 us (about 8.9 years), so
-- a task would have to wait that long before a lower priority overtook it: strict.
local STRICT_WINDOW_US = 281474976710656

local function fmt(n)
  return string.format('%.0f', n)
end

local function server_time()
  local t = redis.call('TIME')
  local s, us = tonumber(t[1]), tonumber(t[2])
  return s * 1000 + math.floor(us / 1000), s * 1000000 + us
end

local function emit(events_key, maxlen, etype, id, priority, attempt, worker)
  if maxlen > 0 then
    redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*',
      'type', etype, 'id', id, 'priority', priority or '', 'attempt', attempt or '', 'worker', worker or '')
  end
end

-- Tasks becoming ready (moving into `queued`) in one script form a batch. Each gets the
-- score clock + (10 - priority) * window, where clock is the queue's monotonic microsecond
-- clock (so FIFO holds even within one microsecond) and window is the aging window (strict
-- priority without one). ZPOPMIN takes the lowest score: highest priority first, oldest
-- first within a priority. The clock is read and written once, the ZADD is one call, and
-- the wake channel is published to when the queue was empty (a worker that found it empty
-- is then sure to hear of the first new task).
local function ready_batch(queued_key, meta_key, config_key, now_us)
  return {
    queued = queued_key, meta = meta_key, now_us = now_us, members = {},
    clock = tonumber(redis.call('HGET', meta_key, 'clock') or '0'),
    window = tonumber(redis.call('HGET', config_key, 'aging_us') or STRICT_WINDOW_US),
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
  return score
end

local function ready_commit(batch, wake)
  if #batch.members == 0 then return end
  local was_empty = redis.call('ZCARD', batch.queued) == 0
  redis.call('ZADD', batch.queued, unpack(batch.members))
  redis.call('HSET', batch.meta, 'clock', fmt(batch.clock))
  if was_empty and wake ~= '' then redis.call('PUBLISH', wake, '1') end
end

-- A newly scheduled task that is now the earliest one changes when workers must wake.
local function wake_if_earliest(scheduled_key, id, wake)
  if wake ~= '' and redis.call('ZRANGE', scheduled_key, 0, 0)[1] == id then
    redis.call('PUBLISH', wake, '0')
  end
end

-- Finished records expire after their TTL, and so does their idempotency key (0: at once).
local function expire_finished(task_key, idem_key, ttl_s)
  if ttl_s <= 0 then
    redis.call('DEL', task_key)
    if idem_key then redis.call('DEL', idem_key) end
  else
    redis.call('EXPIRE', task_key, ttl_s)
    if idem_key then redis.call('EXPIRE', idem_key, ttl_s) end
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

-- Log-spaced latency buckets: bucket b holds values in [1.1^(b-1), 1.1^b) ms, so a
-- percentile read off the bucket bound is within 10 % of the true value; 0 holds < 1 ms.
local LOG_STEP = math.log(1.1)
local function bucket_of(value_ms)
  if value_ms < 1 then return 0 end
  return math.floor(math.log(value_ms) / LOG_STEP) + 1
end

local function observe(hist_key, metric, value_ms)
  redis.call('HINCRBY', hist_key, metric .. ':' .. bucket_of(value_ms), 1)
end

-- Add counts gathered as {bucket = n} in one HINCRBY per bucket.
local function observe_counts(hist_key, metric, counts)
  for bucket, n in pairs(counts) do
    redis.call('HINCRBY', hist_key, metric .. ':' .. bucket, n)
  end
end

-- Move up to `limit` due scheduled tasks to queued. Returns how many moved.
local function promote_due(scheduled_key, queued_key, meta_key, config_key, events_key,
                           task_prefix, limit, maxlen, wake, now_ms, now_us)
  local due = redis.call('ZRANGEBYSCORE', scheduled_key, '-inf', now_ms, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  local batch = ready_batch(queued_key, meta_key, config_key, now_us)
  for _, id in ipairs(due) do
    local task_key = task_prefix .. id
    local priority = redis.call('HGET', task_key, 'priority')
    if priority then
      local score = ready_add(batch, id, tonumber(priority))
      redis.call('HSET', task_key, 'status', 'queued', 'score', score, 'ready_ms', now_ms)
      emit(events_key, maxlen, 'queued', id, priority, nil, nil)
    end
  end
  redis.call('ZREM', scheduled_key, unpack(due))
  ready_commit(batch, wake)
  return #due
end
