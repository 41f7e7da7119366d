package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts that make each write atomic across nodes. Redis runs a
// script to completion before any other command, so a script that numbers,
// stores and publishes an event publishes in Seq order on every node.
//
// A script fails with one of the error codes below; mapError turns them
// into chat's sentinel errors. Scripts check everything before their first
// write, since Redis does not roll back a script that fails halfway.
const (
	codeNotFound   = "STARLING_NOTFOUND"
	codeNoPoll     = "STARLING_NOPOLL"
	codePollClosed = "STARLING_POLLCLOSED"
	codeBadOption  = "STARLING_BADOPTION"
	codePollExists = "STARLING_POLLEXISTS"
)

// luaLog is the prelude the writing scripts share.
//
// logEvent numbers event e (JSON without its seq) with the room's next Seq,
// adds it to the stream as entry "<seq>-0" with field e, and c (a closed
// poll's final tally as a JSON array) when c is not false, and publishes
// the envelope {"seq":…,"counts":…,"event":…} on the room's channel.
//
// entryReply formats one stream entry as {seq, redacted 0|1, fields}.
const luaLog = `
local function logEvent(seqKey, streamKey, channel, maxlen, e, c)
  local seq = redis.call('INCR', seqKey)
  local id = tostring(seq) .. '-0'
  local env = '{"seq":' .. tostring(seq)
  if c then
    redis.call('XADD', streamKey, 'MAXLEN', '~', maxlen, id, 'e', e, 'c', c)
    env = env .. ',"counts":' .. c
  else
    redis.call('XADD', streamKey, 'MAXLEN', '~', maxlen, id, 'e', e)
  end
  redis.call('PUBLISH', channel, env .. ',"event":' .. e .. '}')
  return seq
end

local function entryReply(redactedKey, entry)
  local seq = string.match(entry[1], '^%d+')
  local red = 0
  if redis.call('ZSCORE', redactedKey, seq) then red = 1 end
  return {seq, red, entry[2]}
end
`

// appendScript logs one event.
//
// KEYS: 1 seq counter, 2 stream, 3 redacted seqs (sorted set), 4 the
// idempotency key of (identity, client id), 5 muted hash, 6 banned hash,
// 7 slow-mode key, 8 anonymous-reading key.
// ARGV: 1 channel, 2 max stream length, 3 event JSON, 4 idempotency TTL in
// ms ("0": no client id), 5 delete target ("" unless a delete), 6 sanction
// kind ("" unless moderation), 7 sanction identity, 8 until, 9 seconds,
// 10 anonymous reading ("1" or "0", for anonymous_read).
//
// Returns {0, seq} for a new event, {1, seq, entry} for a resend, and
// {1, seq} for a resend whose event the stream has trimmed.
var appendScript = redis.NewScript(luaLog + `
if ARGV[4] ~= '0' then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local entry = redis.call('XRANGE', KEYS[2], seen .. '-0', seen .. '-0')
    if #entry == 0 then return {1, tonumber(seen)} end
    return {1, tonumber(seen), entryReply(KEYS[3], entry[1])}
  end
end

local target = ARGV[5]
if target ~= '' and #redis.call('XRANGE', KEYS[2], target .. '-0', target .. '-0') == 0 then
  return redis.error_reply('` + codeNotFound + `')
end

local seq = logEvent(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], false)
if ARGV[4] ~= '0' then
  redis.call('SET', KEYS[4], seq, 'PX', ARGV[4], 'NX')
end

if target ~= '' then
  redis.call('ZADD', KEYS[3], target, target)
  -- Forget redactions of entries the stream has trimmed.
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  local firstSeq = string.match(first[1][1], '^%d+')
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. firstSeq)
end

local kind, who = ARGV[6], ARGV[7]
if kind == 'mute' then
  redis.call('HSET', KEYS[5], who, ARGV[8])
elseif kind == 'unmute' then
  redis.call('HDEL', KEYS[5], who)
elseif kind == 'ban' then
  redis.call('HSET', KEYS[6], who, ARGV[8])
elseif kind == 'unban' then
  redis.call('HDEL', KEYS[6], who)
elseif kind == 'slow_mode' then
  if tonumber(ARGV[9]) > 0 then
    redis.call('SET', KEYS[7], ARGV[9])
  else
    redis.call('DEL', KEYS[7])
  end
elseif kind == 'anonymous_read' then
  redis.call('SET', KEYS[8], ARGV[10])
end
return {0, seq}
`)

// rangeScript reads stream entries with their redaction marks in one
// round trip.
//
// KEYS: 1 stream, 2 redacted seqs.
// ARGV: 1 "range" or "tail", 2 first seq (range), 3 count.
//
// Returns entries as entryReply formats them; a tail is newest first.
var rangeScript = redis.NewScript(luaLog + `
local entries
if ARGV[1] == 'tail' then
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[3])
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])
end
local out = {}
for i, entry in ipairs(entries) do
  out[i] = entryReply(KEYS[2], entry)
end
return out
`)

// createPollScript stores a new poll and logs its KindPoll event.
//
// KEYS: 1 seq counter, 2 stream, 3 poll hash, 4 the room's poll index
// (sorted set scored by the poll event's seq).
// ARGV: 1 channel, 2 max stream length, 3 event JSON, 4 poll id,
// 5 question, 6 options JSON, 7 number of options, 8 creator, 9 created,
// 10 closes_at.
//
// Returns the event's seq.
var createPollScript = redis.NewScript(luaLog + `
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('` + codePollExists + `')
end
redis.call('HSET', KEYS[3], 'question', ARGV[5], 'options', ARGV[6], 'n', ARGV[7],
  'creator', ARGV[8], 'created', ARGV[9], 'closes_at', ARGV[10], 'closed', '0')
local seq = logEvent(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], false)
redis.call('ZADD', KEYS[4], seq, ARGV[4])
return seq
`)

// voteScript records one identity's vote and keeps the tally.
//
// KEYS: 1 poll hash, 2 counts hash (option → count), 3 votes hash
// (identity → option).
// ARGV: 1 identity, 2 option, 3 now in Unix ms, 4 channel, 5 tally notice.
//
// Returns 1 when the vote changed, 0 when it already was that option.
var voteScript = redis.NewScript(`
local p = redis.call('HMGET', KEYS[1], 'n', 'closes_at', 'closed')
if not p[1] then
  return redis.error_reply('` + codeNoPoll + `')
end
local closesAt = tonumber(p[2])
if p[3] == '1' or (closesAt > 0 and tonumber(ARGV[3]) >= closesAt) then
  return redis.error_reply('` + codePollClosed + `')
end
local option = tonumber(ARGV[2])
if option < 0 or option >= tonumber(p[1]) then
  return redis.error_reply('` + codeBadOption + `')
end
local old = redis.call('HGET', KEYS[3], ARGV[1])
if old == ARGV[2] then return 0 end
if old then redis.call('HINCRBY', KEYS[2], old, -1) end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`)

// closePollScript closes a poll and logs its KindPollClosed event with
// the final tally, which no vote can change once closed is set.
//
// KEYS: 1 seq counter, 2 stream, 3 poll hash, 4 counts hash.
// ARGV: 1 channel, 2 max stream length, 3 event JSON without the tally.
//
// Returns {seq, tally as a JSON array}.
var closePollScript = redis.NewScript(luaLog + `
local p = redis.call('HMGET', KEYS[3], 'n', 'closed')
if not p[1] then
  return redis.error_reply('` + codeNoPoll + `')
end
if p[2] == '1' then
  return redis.error_reply('` + codePollClosed + `')
end
redis.call('HSET', KEYS[3], 'closed', '1')
local counts = {}
for i = 1, tonumber(p[1]) do
  counts[i] = tonumber(redis.call('HGET', KEYS[4], tostring(i - 1))) or 0
end
local c = '[' .. table.concat(counts, ',') .. ']'
local seq = logEvent(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], c)
return {seq, c}
`)

// presenceScript records one node's client count and sums the live nodes.
// Expiry runs on Redis' clock so that nodes' clock skew cannot expire each
// other's records.
//
// KEYS: 1 node expiries (sorted set, score = expiry in Unix ms), 2 node
// counts (hash).
// ARGV: 1 node, 2 count, 3 ttl in ms.
//
// Returns the sum of the live nodes' counts.
var presenceScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(dead))
end
local sum = 0
for _, n in ipairs(redis.call('HVALS', KEYS[2])) do sum = sum + tonumber(n) end
-- The keys outlive their newest record by nothing, so idle rooms vanish.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last > 0 then
  local at = string.format('%d', tonumber(last[2]))
  redis.call('PEXPIREAT', KEYS[1], at)
  redis.call('PEXPIREAT', KEYS[2], at)
end
return sum
`)
