-- Rate limiters for claim.lua (taskq/ratelimit.py says what a limit means).
-- A limit is a spec "<gcra|tb> <count> <period ms> <burst>" (the queue's `limits` hash);
-- each limiter keeps its state in one string key (the queue's rate-limit prefix plus
-- "q" for the queue or "n:<len>:<name>[:<key>]" for a task name and key), which expires
-- once the limiter is back at rest, so per-key limiters do not pile up.
--   gcra: the theoretical arrival time of the next run, in microseconds (server clock).
--   tb:   "<tokens> <time of that count, us>".
-- A script loads a limiter once (rl_get), checks and takes from it in memory, and writes it
-- back once at the end (rl_save_all).

local function rl_get(cache, state_key, spec, now_us)
  local L = cache[state_key]
  if L then return L end
  local algo, count, period_ms, burst = string.match(spec, '^(%a+) (%d+) (%d+) (%d+)$')
  if not algo then return nil end
  L = {key = state_key, algo = algo, interval = tonumber(period_ms) * 1000 / tonumber(count),
    burst = tonumber(burst), dirty = false, blocked = false}
  local raw = redis.call('GET', state_key)
  if algo == 'gcra' then
    L.tat = tonumber(raw or '0') or 0
  else
    local tokens, last = L.burst, now_us
    if raw then
      local t, l = string.match(raw, '^(%S+) (%S+)$')
      tokens, last = tonumber(t) or L.burst, tonumber(l) or now_us
    end
    L.tokens = math.min(L.burst, tokens + math.max(0, now_us - last) / L.interval)
  end
  cache[state_key] = L
  cache[#cache + 1] = L
  return L
end

-- May one more task run now? Returns true, or false and the time (us) one may.
local function rl_check(L, now_us)
  if L.algo == 'gcra' then
    local tau = (L.burst - 1) * L.interval
    local tat = math.max(L.tat, now_us)
    if tat - now_us > tau then return false, tat - tau end
    return true, now_us
  end
  if L.tokens >= 1 then return true, now_us end
  return false, now_us + (1 - L.tokens) * L.interval
end

local function rl_take(L, now_us)
  if L.algo == 'gcra' then
    L.tat = math.max(L.tat, now_us) + L.interval
  else
    L.tokens = L.tokens - 1
  end
  L.dirty = true
end

-- How many of `n` tasks may run now (without taking them).
local function rl_allowance(L, n, now_us)
  if L.algo == 'gcra' then
    local tau = (L.burst - 1) * L.interval
    local tat = math.max(L.tat, now_us)
    local k = math.floor((now_us + tau - tat) / L.interval) + 1
    return math.max(0, math.min(n, k))
  end
  return math.max(0, math.min(n, math.floor(L.tokens)))
end

local function rl_save_all(cache, now_us)
  for _, L in ipairs(cache) do
    if L.dirty then
      if L.algo == 'gcra' then
        local ttl_ms = math.ceil((L.tat - now_us) / 1000) + 1
        redis.call('SET', L.key, string.format('%.0f', L.tat), 'PX', math.max(1, ttl_ms))
      else
        local ttl_ms = math.ceil((L.burst - L.tokens) * L.interval / 1000) + 1
        redis.call('SET', L.key, string.format('%.6f %.0f', L.tokens, now_us), 'PX', math.max(1, ttl_ms))
      end
    end
  end
end

-- The rate key a task carries (a meta label, taskq.ratelimit.RATE_KEY_META), or nil.
local function rl_task_key(meta)
  if not meta or not string.find(meta, '"taskq.rate_key"', 1, true) then return nil end
  local ok, decoded = pcall(cjson.decode, meta)
  if ok and type(decoded) == 'table' and type(decoded['taskq.rate_key']) == 'string' then
    return decoded['taskq.rate_key']
  end
  return nil
end
