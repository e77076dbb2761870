--[[ snapshot: everything a dashboard shows about one queue, in one step. It writes only its
  cache of window figures.

KEYS[1] queued  KEYS[2] scheduled  KEYS[3] running  KEYS[4] dead  KEYS[5] config
KEYS[6] window figures cache
KEYS[7..15] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] task key prefix  ARGV[2] how many running tasks to list (soonest lease deadline first)
ARGV[3] lifetime latency too: 1 or 0
ARGV[4..] window lengths in seconds: up to 60 read the 1-s checkpoints, up to 900 the 10-s ones
Returns: a flat array (the reply is built from what the commands return, with no JSON
  encoding of the live figures, which costs more than the reads themselves):
  [1] now_ms  [2] queued  [3] scheduled  [4] next due ms (-1: none)  [5] running
  [6] overdue (running tasks whose lease deadline has passed)  [7] dead
  [8] aging_us (nil: none)  [9] default priority (nil: none)  [10] events stream length
  [11] depth as flat HGETALL pairs (priority, n)  [12] counters as flat HGETALL pairs
  [13] running tasks, 8 values each: id, lease deadline ms, worker, started ms, attempts,
       name, priority, progress JSON (soonest deadline first; nil where a field is missing)
  [14] lifetime span ('' unless ARGV[3] is 1)  [15..] one span per window, each a JSON
  string (cached for the second, so passed through untouched): [start s, end s, then for
  wait, run and e2e in turn the count and the buckets of p50, p90, p99 and p99.9 (-1 with
  no observation), then the counters that rose, as name, increase, name, increase, ...]

Windows cover whole seconds and end where the current second began: a window of W seconds
is the checkpoint of this second minus the checkpoint W seconds before (or, where the 10-s
checkpoints were thinned, the nearest one). So its figures cannot change within a second,
and the first snapshot in each second computes them for every reader after it. Quiet
queues cost little even then: a window that began after the last write is empty without a
read, and with no write since the cached second the lifetime figures stand, as do those of
a window up to a minute whose start passed no second with writes.
]]
--!include lib/common.lua

local PER_MILLE = {500, 900, 990, 999}
local FINE_WINDOW_MAX_S = 60
local CACHE_TTL_S = 120

local now_ms = server_time()
local now_s = math.floor(now_ms / 1000)
local T = tel_open(KEYS, 7, '0 1 0', now_ms)  -- key names only: windows off, so no checkpoint
local prefix, running_limit, with_lifetime = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'

local flat_stats = redis.call('HGETALL', T.stats)

-- Bytes [from, to] of a histogram string -> {n(bucket 0), n(bucket 1), ...}. struct.unpack
-- decodes in C where the server has it (Redis, Valkey); plain Lua elsewhere (fakeredis).
local formats = {}
local function counts_of(s, from, to)
  local n = math.floor((to - from + 1) / 6)
  if n <= 0 then return {} end
  if struct then
    formats[n] = formats[n] or ('>' .. string.rep('I6', n))
    local t = {struct.unpack(formats[n], s, from)}
    t[n + 1] = nil
    return t
  end
  local t = {}
  for i = 0, n - 1 do
    local a, b, c, d, e, f = string.byte(s, from + 6 * i, from + 6 * i + 5)
    t[i + 1] = ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
  end
  return t
end

-- A checkpoint member: its JSON header (s, prev, c) with its histograms decoded as h.
local function parse_point(member)
  local nl = string.find(member, '\n', 1, true)
  local point = cjson.decode(string.sub(member, 1, nl - 1))
  local at = nl + 1
  point.h = {}
  for i, metric in ipairs(METRICS) do
    point.h[metric] = counts_of(member, at, at + point.n[i] - 1)
    at = at + point.n[i]
  end
  return point
end

local function checkpoint_near(set, lo, hi, reverse)
  local found
  if reverse then
    found = redis.call('ZREVRANGEBYSCORE', set, hi, lo, 'WITHSCORES', 'LIMIT', 0, 1)
  else
    found = redis.call('ZRANGEBYSCORE', set, lo, hi, 'WITHSCORES', 'LIMIT', 0, 1)
  end
  if found[1] then return found[1], tonumber(found[2]) end
  return nil, nil
end

-- The figures as the current second began: its checkpoint, or (no write yet this second)
-- the live counters and histograms.
local function state_now()
  local member = checkpoint_near(T.fine, now_s, now_s, false)
  if member then return parse_point(member) end
  local state = {c = {}, h = {}}
  for i = 1, #flat_stats, 2 do state.c[flat_stats[i]] = tonumber(flat_stats[i + 1]) end
  for _, metric in ipairs(METRICS) do
    local s = redis.call('GET', T[metric]) or ''
    state.h[metric] = counts_of(s, 1, #s)
  end
  return state
end

local last_write_s = nil  -- the second of the newest checkpoint, read when a window needs it
-- The last second in which a script wrote (its checkpoint's second; -1: none yet).
local function last_write()
  last_write_s = last_write_s or tonumber(redis.call('HGET', T.meta, 'ckpt_s') or '-1')
  return last_write_s
end

-- The checkpoint a window starting at second `start` subtracts: (checkpoint, or false when
-- nothing changed since the start; the second it stands for).
local function state_at(start, set)
  local after, after_s = checkpoint_near(set, start, '+inf', false)
  local point = after and parse_point(after)
  if point and point.prev < start then return point, start end  -- no write in [start, after)
  if not point and last_write() < start then return false, start end
  -- The 10-s checkpoints were thinned around the start: take the nearer neighbour.
  local before, before_s = checkpoint_near(set, '-inf', '(' .. start, true)
  if before and (not point or start - before_s < after_s - start) then return parse_point(before), before_s end
  if point then return point, after_s end
  return {c = {}, h = {}}, start
end

local EMPTY = {}
-- The latency part of a span with no observation: count 0 and no percentile, per metric.
local IDLE_LATENCY = string.rep(',0,-1,-1,-1,-1', #METRICS)

-- Appends to `out`, per metric: the count of (last - first) and the buckets of its
-- percentiles (nearest rank: the bucket holding the ceil(q * count)-th value). Counters only
-- grow, so first's buckets are a prefix of last's and the count is a difference of sums.
local function latency(last, first, out)
  for _, metric in ipairs(METRICS) do
    local cur, old = last[metric] or EMPTY, first[metric] or EMPTY
    local total = 0
    for i = 1, #cur do total = total + cur[i] end
    for i = 1, #old do total = total - old[i] end
    out[#out + 1] = total
    local q = 1
    if total > 0 then
      local need, seen = math.floor((PER_MILLE[1] * total + 999) / 1000), 0
      for i = 1, #cur do
        seen = seen + cur[i] - (old[i] or 0)
        while q <= #PER_MILLE and seen >= need do
          out[#out + 1] = i - 1
          q = q + 1
          if q <= #PER_MILLE then need = math.floor((PER_MILLE[q] * total + 999) / 1000) end
        end
        if q > #PER_MILLE then break end
      end
    end
    for _ = q, #PER_MILLE do out[#out + 1] = -1 end
  end
end

-- A span as JSON, written by hand (all integers and plain counter names): cheaper than cjson.
local function span(last, first, start_s)
  local out = {start_s, now_s}
  latency(last.h, first.h, out)
  for name, n in pairs(last.c) do
    local d = n - (first.c[name] or 0)
    if d ~= 0 then
      out[#out + 1] = '"' .. name .. '"'
      out[#out + 1] = d
    end
  end
  return '[' .. table.concat(out, ',') .. ']'
end

-- The spans asked for ('all' for the lifetime, else a window length), cached as JSON for
-- the current second (field '_s' says which second; the hash starts afresh in a new one).
local fields = {}
if with_lifetime then fields[1] = 'all' end
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local spans = {}
if #fields > 0 then
  local cached = redis.call('HMGET', KEYS[6], '_s', unpack(fields))
  local current = cached[1] == tostring(now_s)
  local now_state = nil
  local fresh = {}
  for i, field in ipairs(fields) do
    local length_s = tonumber(field)
    if current and cached[i + 1] then
      spans[i] = cached[i + 1]
    elseif length_s and last_write() < now_s - length_s then
      -- Every write came before the window began (an idle queue): nothing to read.
      spans[i] = '[' .. (now_s - length_s) .. ',' .. now_s .. IDLE_LATENCY .. ']'
    elseif cached[i + 1] and (tonumber(cached[1] or '') or -1) > last_write() then
      -- Nothing written since the second these figures were cached for: the lifetime stands,
      -- and so does a window unless its start went past a second with writes.
      local cached_s = tonumber(cached[1])
      if not length_s then
        spans[i] = cached[i + 1]
      elseif length_s <= FINE_WINDOW_MAX_S and now_s - cached_s <= FINE_KEEP_S - length_s
          and redis.call('ZCOUNT', T.fine, cached_s - length_s, now_s - length_s - 1) == 0 then
        local _, after_end = string.find(cached[i + 1], '^%[%-?%d+,%-?%d+')
        spans[i] = '[' .. (now_s - length_s) .. ',' .. now_s .. string.sub(cached[i + 1], after_end + 1)
      end
    end
    if not spans[i] then
      now_state = now_state or state_now()
      local figures
      if field == 'all' then
        figures = span(now_state, {c = {}, h = {}}, 0)
      else
        local set = T.coarse
        if length_s <= FINE_WINDOW_MAX_S then set = T.fine end
        local first, start_s = state_at(now_s - length_s, set)
        figures = span(now_state, first or now_state, start_s)
      end
      spans[i] = figures
    end
    if not (current and cached[i + 1]) then
      fresh[#fresh + 1] = field
      fresh[#fresh + 1] = spans[i]
    end
  end
  if #fresh > 0 then
    if not current then redis.call('DEL', KEYS[6]) end
    redis.call('HSET', KEYS[6], '_s', now_s, unpack(fresh))
    redis.call('EXPIRE', KEYS[6], CACHE_TTL_S)
  end
end
if not with_lifetime then table.insert(spans, 1, '') end

local running = {}
if running_limit > 0 then
  local leased = redis.call('ZRANGE', KEYS[3], 0, running_limit - 1, 'WITHSCORES')
  for i = 1, #leased, 2 do
    local f = redis.call('HMGET', prefix .. leased[i], 'worker', 'started_ms', 'attempts', 'name', 'priority',
      'progress')
    local n = #running
    running[n + 1], running[n + 2] = leased[i], tonumber(leased[i + 1])
    for j = 1, 6 do running[n + 2 + j] = f[j] end
  end
end

local first_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local config = redis.call('HMGET', KEYS[5], 'aging_us', 'default_priority')
local reply = {
  now_ms,
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCARD', KEYS[2]),
  tonumber(first_due[2] or '-1'),
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCOUNT', KEYS[3], '-inf', now_ms),
  redis.call('ZCARD', KEYS[4]),
  config[1],
  config[2],
  redis.call('XLEN', T.events),
  redis.call('HGETALL', T.depth),
  flat_stats,
  running,
}
for _, s in ipairs(spans) do reply[#reply + 1] = s end
return reply
