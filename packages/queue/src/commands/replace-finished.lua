--[[
  Before adding jobs to a location's queue: frees the ids of jobs that are finished without a
  delivery, so that adding the message again (a fixed dead letter imported or sent again) queues
  it instead of being a no-op for an id that already exists. One location's keys only.

  KEYS[1] the queue's failed ZSET, KEYS[2] its completed ZSET, KEYS[3] its events stream
  KEYS[4..] two per job, in order: the job's hash, then its message's ledger entry (job i, from
            1: KEYS[2 + 2i] and KEYS[3 + 2i])
  ARGV[1], ARGV[2], ... each job's id, in the same order

  Returns one code per job, in order:
    0  no job has the id: the add goes through
    1  a failed job, or a completed one the ledger does not know was delivered, was removed
       (its hash, logs and set membership, as BullMQ removes a job): the add goes through
    2  the ledger knows the message was delivered: not to be added
    3  the job is waiting, delayed, active...: left alone, the add is a no-op
]]
local failedKey, completedKey, eventsKey = KEYS[1], KEYS[2], KEYS[3]
local codes = {}
for i = 1, #ARGV do
  local jobId = ARGV[i]
  local jobKey = KEYS[2 + 2 * i]
  local ledgerKey = KEYS[3 + 2 * i]
  local code = 0
  if redis.call('EXISTS', ledgerKey) == 1 then
    code = 2
  else
    local finishedIn
    if redis.call('ZSCORE', failedKey, jobId) then
      finishedIn = failedKey
    elseif redis.call('ZSCORE', completedKey, jobId) then
      finishedIn = completedKey
    end
    if finishedIn then
      redis.call('ZREM', finishedIn, jobId)
      -- The keys BullMQ's removeJobKeys deletes.
      redis.call('DEL', jobKey, jobKey .. ':logs', jobKey .. ':dependencies', jobKey .. ':processed', jobKey .. ':failed', jobKey .. ':unsuccessful')
      redis.call('XADD', eventsKey, 'MAXLEN', '~', 10000, '*', 'event', 'removed', 'jobId', jobId, 'prev', finishedIn == failedKey and 'failed' or 'completed')
      code = 1
    elseif redis.call('EXISTS', jobKey) == 1 then
      code = 3
    end
  end
  codes[i] = code
end
return codes
