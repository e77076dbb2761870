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

-- The queue score of a task of `priority` becoming ready now: a per-queue monotonic
-- microsecond clock (FIFO, even within one microsecond) plus (10 - priority) windows.
-- ZPOPMIN takes the lowest score: highest priority first, oldest first within one.
local function queue_score(meta_key, config_key, priority, now_us)
  local last = tonumber(redis.call('HGET', meta_key, 'clock') or '0')
  local clock = now_us
  if clock <= last then clock = last + 1 end
  redis.call('HSET', meta_key, 'clock', fmt(clock))
  local window = tonumber(redis.call('HGET', config_key, 'aging_us') or STRICT_WINDOW_US)
  return clock + (10 - priority) * window
end

local function emit(events_key, maxlen, etype, id, priority, attempt, worker)
  if maxlen > 0 then
    redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*',
      'type', etype, 'id', id, 'priority', priority or '', 'attempt', attempt or '', 'worker', worker or '')
  end
end

-- Put a task into `queued`, publishing on the wake channel when the queue was empty
-- (a worker that found the queue empty is then sure to hear of the first new task).
local function make_ready(queued_key, meta_key, config_key, task_key, id, priority, now_ms, now_us, wake)
  local score = queue_score(meta_key, config_key, priority, now_us)
  redis.call('ZADD', queued_key, fmt(score), id)
  redis.call('HSET', task_key, 'status', 'queued', 'score', fmt(score), 'ready_ms', now_ms)
  if wake ~= '' and redis.call('ZCARD', queued_key) == 1 then
    redis.call('PUBLISH', wake, '1')
  end
  return score
end

-- A newly scheduled task that is now the earliest one changes when workers must wake.
local function wake_if_earliest(scheduled_key, id, wake)
  if wake ~= '' and redis.call('ZRANGE', scheduled_key, 0, 0)[1] == id then
    redis.call('PUBLISH', wake, '0')
  end
end

-- Finished records expire after their TTL, and so does their idempotency key.
local function expire_record(task_key, idem_prefix, ttl_s)
  local idem = redis.call('HGET', task_key, 'idem')
  if ttl_s <= 0 then
    redis.call('DEL', task_key)
    if idem then redis.call('DEL', idem_prefix .. idem) end
  else
    redis.call('EXPIRE', task_key, ttl_s)
    if idem then redis.call('EXPIRE', idem_prefix .. idem, ttl_s) end
  end
end

-- Log-spaced latency buckets: bucket b holds values in [1.1^(b-1), 1.1^b) ms, so a
-- percentile read off the bucket bound is within 10 % of the true value; 0 holds < 1 ms.
local function observe(hist_key, metric, value_ms)
  local bucket = 0
  if value_ms >= 1 then bucket = math.floor(math.log(value_ms) / math.log(1.1)) + 1 end
  redis.call('HINCRBY', hist_key, metric .. ':' .. bucket, 1)
end

-- Move up to `limit` due scheduled tasks to queued. Returns how many moved.
local function promote_due(scheduled_key, queued_key, meta_key, config_key, events_key,
                           task_prefix, limit, maxlen, wake, now_ms, now_us)
  local due = redis.call('ZRANGEBYSCORE', scheduled_key, '-inf', now_ms, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local task_key = task_prefix .. id
    redis.call('ZREM', scheduled_key, id)
    local priority = redis.call('HGET', task_key, 'priority')
    if priority then
      make_ready(queued_key, meta_key, config_key, task_key, id, tonumber(priority), now_ms, now_us, wake)
      emit(events_key, maxlen, 'queued', id, priority, nil, nil)
    end
  end
  return #due
end
