--- Per-client state fed by server notifications (status for the statusline, checkpoint tracking).
local M = {}

---@type table<integer, table> last tether/status payload per client id
M.status = {}
---@type integer|nil client that sent the most recent status
M.last_client = nil
---@type table<integer, integer> newest checkpoint id known per client (announced or baseline)
M.newest = {}
---@type table<integer, table<integer, boolean>> checkpoint ids already announced per client
M.announced = {}
---@type table<integer, integer[]> checkpoint ids seen in the last timeline, for completion
M.timeline_ids = {}

---@type integer|nil vim.uv.now() when the user last asked for next steps (resume, step)
M.asked_at = nil

--- The user just ran something that answers with next steps.
function M.user_asked()
  M.asked_at = vim.uv.now()
end

--- Whether next steps arriving now answer the user (then the float may take focus).
---@param within_ms integer|nil
function M.user_asked_recently(within_ms)
  return M.asked_at ~= nil and vim.uv.now() - M.asked_at <= (within_ms or 60000)
end

---@param name string User autocmd pattern
---@param data any
function M.fire(name, data)
  vim.api.nvim_exec_autocmds('User', { pattern = name, modeline = false, data = data })
end

--- Fire `User TetherCheckpoint` once per new checkpoint, whether we learn about it from a
--- command result or from a status notification (a save or an agent step), in either order.
---@param client_id integer
---@param info table|nil CheckpointInfo
---@param from_status boolean|nil
function M.note_checkpoint(client_id, info, from_status)
  if type(info) ~= 'table' or type(info.id) ~= 'number' then
    return
  end
  local announced = M.announced[client_id] or {}
  M.announced[client_id] = announced
  if announced[info.id] then
    return
  end
  local newest = M.newest[client_id]
  if from_status then
    -- The first status after connecting reports an old checkpoint: a baseline, not news.
    -- Older ids arriving late are not news either.
    if newest == nil or info.id <= newest then
      M.newest[client_id] = math.max(newest or 0, info.id)
      return
    end
  end
  M.newest[client_id] = math.max(newest or 0, info.id)
  announced[info.id] = true
  M.fire('TetherCheckpoint', { client_id = client_id, checkpoint = info })
end

---@param client_id integer
---@param status table
function M.set_status(client_id, status)
  M.status[client_id] = status
  M.last_client = client_id
  if type(status.lastCheckpoint) == 'table' then
    M.note_checkpoint(client_id, vim.deepcopy(status.lastCheckpoint), true)
  elseif M.newest[client_id] == nil then
    M.newest[client_id] = 0 -- no checkpoint yet: the first one will be news
  end
end

function M.forget(client_id)
  M.status[client_id] = nil
  M.announced[client_id] = nil
  M.newest[client_id] = nil
  M.timeline_ids[client_id] = nil
  if M.last_client == client_id then
    M.last_client = next(M.status)
  end
end

--- The status that matters for a buffer: its own client's, else the most recent one.
---@param bufnr integer|nil
---@return table|nil status, integer|nil client_id
function M.for_buffer(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  for _, client in ipairs(vim.lsp.get_clients({ bufnr = bufnr, name = 'tether' })) do
    if M.status[client.id] then
      return M.status[client.id], client.id
    end
  end
  if M.last_client and M.status[M.last_client] then
    return M.status[M.last_client], M.last_client
  end
  return nil, nil
end

return M
