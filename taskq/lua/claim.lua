--[[ claim: promote due scheduled tasks, then pop up to N tasks by (priority, FIFO) and
  lease each to the worker, in one step: a task is always in `queued` or in `running`,
  never in neither, so a worker killed at any point loses nothing.

KEYS[1] queued  KEYS[2] scheduled  KEYS[3] running  KEYS[4] config
KEYS[5..13] telemetry (lib/common.lua): meta, stats, events, checkpoints 1 s,
  checkpoints 10 s, depth, histograms of wait, run and e2e
ARGV[1] max tasks  ARGV[2] lease ms  ARGV[3] worker id  ARGV[4] task key prefix
KEYS[14] limits (HASH: task name, or '' for the whole queue -> rate spec, lib/ratelimit.lua)
ARGV[5] telemetry settings "<events maxlen> <events sample> <windows 0|1>"  ARGV[6] wake (channel, or 'SPUBLISH <channel>')
ARGV[7] rate-limit state key prefix (the limiters' keys, lib/ratelimit.lua)
KEYS[15] idle  ARGV[8] hand-off registration ms, or 0 (lib/common.lua, handoff): with it, a
  claim that leaves the queue empty (fewer tasks than asked, no rate limit) registers the
  worker idle for that long, so the next tasks queued are leased to it at once; any other
  claim takes a registration it left back.
  ARGV[9] the most tasks the registration takes (default 1): it takes as many as the claim
  left unasked (max tasks less those claimed), up to this and HANDOFF_SLOTS.
Rate limits: with no limit set the script pops the queue's head (ZPOPMIN); with only a
  queue-wide limit it pops as many as the limit allows now. With task-name limits it reads
  the queue in order (up to max tasks + SCAN_LIMIT candidates) and takes each task whose
  limiters allow it; a limited task stays where it is, never claimed and handed back, and
  tasks behind it that may run are taken (priority order holds among those).
Returns: a flat array: first the due time (ms) of the earliest task still scheduled, or the
  time (ms) a rate limit that held a task back next allows one if sooner, or -1 when there
  is neither; then 14 fields per claimed task:
  id, token, attempts, name, args, kwargs, timeout_ms, max_retries,
  retry_base_ms, retry_cap_ms, retry_min_ms, retry_jitter, priority, meta
  (kwargs, timeout_ms, the retry_* fields and meta are nil where the record leaves out the
  default: ops.py _parse_claim fills them in)
  Lease tokens are unique per queue: a fresh number from the queue's lease counter.
]]
--!include lib/common.lua
--!include lib/ratelimit.lua

local max_n, lease_ms, worker, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local now_ms, now_us = server_time()
local T = tel_open(KEYS, 5, ARGV[5], now_ms)

-- The earliest scheduled task: when it is not due yet there is nothing to promote, and it is
-- the due time the reply starts with (nothing below changes the scheduled set).
local first_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first_due[2] and tonumber(first_due[2]) <= now_ms then
  promote_due(KEYS[2], KEYS[1], KEYS[4], T, prefix, math.max(max_n, 100), ARGV[6], now_ms, now_us)
  first_due = nil
end

local SCAN_LIMIT = 1000
local ids = {}
local next_allowed_us = nil
local limits = redis.call('HGETALL', KEYS[14])
if #limits == 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], max_n)
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
else
  local specs, cache, gone, named = {}, {}, {}, false
  for i = 1, #limits, 2 do
    specs[limits[i]] = limits[i + 1]
    if limits[i] ~= '' then named = true end
  end
  local rl_prefix = ARGV[7]
  local queue_limiter = specs[''] and rl_get(cache, rl_prefix .. 'q', specs[''], now_us)
  local function held_back(at_us)
    if not next_allowed_us or at_us < next_allowed_us then next_allowed_us = at_us end
  end
  local offset, chunk, scanned, stop = 0, math.max(2 * max_n, 16), 0, false
  if queue_limiter and not named then
    -- Only the queue is limited: pop as many as it allows now, with no scan.
    local allowed = rl_allowance(queue_limiter, max_n, now_us)
    if allowed > 0 then
      local popped = redis.call('ZPOPMIN', KEYS[1], allowed)
      for i = 1, #popped, 2 do
        ids[#ids + 1] = popped[i]
        rl_take(queue_limiter, now_us)
      end
    end
    if allowed < max_n and #ids == allowed then
      local ok, at_us = rl_check(queue_limiter, now_us)
      if not ok then held_back(at_us) end
    end
    stop = true
  end
  while not stop and #ids < max_n and scanned < max_n + SCAN_LIMIT do
    local batch = redis.call('ZRANGE', KEYS[1], offset, offset + chunk - 1)
    if #batch == 0 then break end
    offset = offset + #batch
    for _, id in ipairs(batch) do
      scanned = scanned + 1
      if queue_limiter then
        local ok, at_us = rl_check(queue_limiter, now_us)
        if not ok then held_back(at_us); stop = true; break end
      end
      local nm = redis.call('HMGET', prefix .. id, 'name', 'meta')
      local L = nil
      if not nm[1] then
        gone[#gone + 1] = id
      else
        local spec = specs[nm[1]]
        if spec then
          local key = rl_task_key(nm[2])
          local suffix = 'n:' .. #nm[1] .. ':' .. nm[1]
          if key then suffix = suffix .. ':' .. key end
          L = rl_get(cache, rl_prefix .. suffix, spec, now_us)
        end
        local ok, at_us = true, now_us
        if L and L.blocked then
          ok = false
        elseif L then
          ok, at_us = rl_check(L, now_us)
          if not ok then L.blocked = true; held_back(at_us) end
        end
        if ok then
          if queue_limiter then rl_take(queue_limiter, now_us) end
          if L then rl_take(L, now_us) end
          ids[#ids + 1] = id
          if #ids >= max_n then break end
        end
      end
      if scanned >= max_n + SCAN_LIMIT then break end
    end
  end
  rl_save_all(cache, now_us)
  if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
  if #ids > 0 and named then redis.call('ZREM', KEYS[1], unpack(ids)) end
end
local register_ms = tonumber(ARGV[8] or '0') or 0
if register_ms > 0 then
  local names = handoff_members(ARGV[2], worker)
  local slots = math.floor(math.min(max_n - #ids, tonumber(ARGV[9] or '1') or 1, HANDOFF_SLOTS))
  if slots >= 1 and #limits == 0 then
    local score, z = fmt(now_ms + register_ms), {}
    for n = 1, slots do z[2 * n - 1], z[2 * n] = score, names[n] end
    redis.call('ZADD', KEYS[15], unpack(z))
    if slots < HANDOFF_SLOTS then redis.call('ZREM', KEYS[15], unpack(names, slots + 1)) end
  else
    redis.call('ZREM', KEYS[15], unpack(names))
  end
end
first_due = first_due or redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local out = {-1}
if first_due[2] then out[1] = tonumber(first_due[2]) end
if next_allowed_us then
  local at_ms = math.ceil(next_allowed_us / 1000)
  if out[1] < 0 or at_ms < out[1] then out[1] = at_ms end
end
if #ids == 0 then
  tel_flush(T)
  return out
end

local deadline = now_ms + lease_ms
local last_token = redis.call('HINCRBY', T.meta, 'lease_seq', int_arg(#ids))
local first_token = last_token - #ids
local leases = {}
local claimed = 0
-- the same text Redis would make of these numbers (%.17g), made once for the batch: a whole
-- deadline of under 16 digits prints the same with fmt, and a lease_ms given as a plain
-- integer is that text already
local deadline_arg, lease_arg, now_text = deadline, lease_ms, fmt(now_ms)
if #ids > 1 and deadline % 1 == 0 and deadline < 1e15 then deadline_arg = fmt(deadline) end
if string.find(ARGV[2], '^[1-9]%d?%d?%d?%d?%d?%d?%d?%d?$') then lease_arg = ARGV[2] end
for i = 1, #ids do
  local id = ids[i]
  local key = prefix .. id
  local f = lease_read(key)
  if f[1] then
    local token = token_text(first_token + i)
    local attempts = lease_write(T, key, id, f, token, worker, now_ms, now_text, lease_arg)
    leases[#leases + 1] = deadline_arg
    leases[#leases + 1] = id
    lease_reply(out, id, token, attempts, f)
    claimed = claimed + 1
  end
end
if claimed > 0 then redis.call('ZADD', KEYS[3], unpack(leases)) end
tel_count(T, 'started', claimed)
tel_flush(T)
return out
