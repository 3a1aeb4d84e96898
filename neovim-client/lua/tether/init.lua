--- Tether for Neovim: keeps an AI coding agent's working context across disconnects.
---
--- `require('tether').setup(opts)` (or `vim.g.tether = {...}`) configures and enables the
--- `tether` language server; everything else goes through the `:Tether` command or this module.
local config = require('tether.config')
local protocol = require('tether.protocol')
local state = require('tether.state')
local ui = require('tether.ui')

local M = {}

local api = vim.api

M._did_setup = false

--- The vim.lsp.Config for the server, built from the resolved configuration.
---@param cfg tether.Config|nil
---@return vim.lsp.Config
function M.lsp_config(cfg)
  cfg = cfg or config.get()
  return {
    cmd = vim.deepcopy(cfg.cmd),
    cmd_env = next(cfg.cmd_env) and vim.deepcopy(cfg.cmd_env) or nil,
    root_markers = vim.deepcopy(cfg.root_markers),
    workspace_required = cfg.workspace_required,
    init_options = config.init_options(cfg),
    handlers = require('tether.handlers'),
    on_exit = function(_, _, client_id)
      vim.schedule(function()
        state.forget(client_id)
        require('tether.cursor').forget(client_id)
        pcall(vim.cmd, 'redrawstatus!')
      end)
    end,
  }
end

local augroup = api.nvim_create_augroup('tether', { clear = true })

---@param opts table|nil see |tether-config|
function M.setup(opts)
  local cfg = config.apply(opts)
  M._did_setup = true
  require('tether.commands').create()
  vim.lsp.config('tether', M.lsp_config(cfg))
  api.nvim_clear_autocmds({ group = augroup })
  require('tether.cursor').attach_autocmds()
  require('tether.swap').attach_autocmds()
  require('tether.autostart').attach_autocmds()
  require('tether.docs').ensure_helptags()
  if cfg.autostart then
    -- Files without a filetype are started by tether.autostart (FileType never fires for them).
    vim.lsp.enable('tether')
    if cfg.start_in_cwd then
      if vim.v.vim_did_enter == 1 then
        M.start_for_cwd()
      else
        api.nvim_create_autocmd('VimEnter', { group = augroup, once = true, callback = M.start_for_cwd })
      end
    end
  end
end

--- Start (or reuse) the server for the workspace holding the cwd, attached to no buffer, so
--- that "resume available" shows as soon as Neovim opens in a project.
function M.start_for_cwd()
  local cfg = config.get()
  local root = vim.fs.root(vim.fn.getcwd(), cfg.root_markers)
  local lsp_cfg = root and vim.lsp.config.tether
  if not lsp_cfg then
    return nil
  end
  local start_cfg = vim.deepcopy(lsp_cfg)
  start_cfg.root_dir = root
  -- vim.lsp.start reuses a client already running (or starting) for the same root.
  return vim.lsp.start(start_cfg, { attach = false })
end

--- Last `tether/status` payload relevant to a buffer (its client's, else the newest).
---@param bufnr integer|nil
---@return table|nil
function M.status(bufnr)
  return (state.for_buffer(bufnr))
end

--- What the statusline says for a buffer: the label and its kind ('error', 'resume', 'busy' or
--- 'idle'), or nil when no server speaks for it.
---@param bufnr integer|nil default: the current buffer
---@return {label: string, kind: 'error'|'resume'|'busy'|'idle'}|nil
function M.status_view(bufnr)
  local st = state.for_buffer(bufnr or api.nvim_get_current_buf())
  if not st then
    return nil
  end
  local label, kind
  if st.state == protocol.STATE_ERROR then
    label = 'error' .. ((type(st.error) == 'string' and st.error ~= '') and (': ' .. st.error) or '')
    kind = 'error'
  elseif st.resumeAvailable then
    label, kind = 'resume available', 'resume'
  elseif type(st.text) == 'string' and st.text ~= '' then
    label = st.text
  elseif type(st.lastCheckpoint) ~= 'table' then
    label = 'no checkpoint yet'
  else
    label = ui.relative_time(st.lastCheckpoint.time)
  end
  if st.state == protocol.STATE_BUSY and not st.checkpointing then
    label = label .. ' …'
  end
  if not kind then
    kind = (st.state == protocol.STATE_BUSY or st.checkpointing) and 'busy' or 'idle'
  end
  return { label = label, kind = kind }
end

--- Statusline component, e.g. `%{v:lua.require'tether'.statusline()}`; for lualine, the
--- `'tether'` component (|tether-lualine|).
---@param opts {prefix: string|nil, bufnr: integer|nil}|nil prefix: default |tether-statusline-config|
---@return string
function M.statusline(opts)
  opts = opts or {}
  local view = M.status_view(opts.bufnr)
  if not view then
    return ''
  end
  local prefix = opts.prefix
  if prefix == nil then
    prefix = config.get().statusline.prefix
  end
  if prefix == '' then
    return view.label
  end
  return prefix .. ': ' .. view.label
end

-- Clients ------------------------------------------------------------------------------------

local function inside(root, path)
  return root ~= nil and path ~= nil and (path == root or vim.startswith(path, root .. '/'))
end

--- The tether client for the current buffer, else the one whose workspace holds the cwd.
---@return vim.lsp.Client|nil
function M.client()
  local clients = vim.lsp.get_clients({ bufnr = 0, name = 'tether' })
  if clients[1] then
    return clients[1]
  end
  local cwd = vim.fn.getcwd()
  local all = vim.lsp.get_clients({ name = 'tether' })
  for _, c in ipairs(all) do
    if inside(c.root_dir, cwd) then
      return c
    end
  end
  return all[1]
end

--- Run `fn(client)` once a client is initialized, starting one for the cwd's workspace when
--- none runs yet (e.g. `nvim` opened without a file, then `:Tether resume`).
---@param fn fun(client: vim.lsp.Client)
function M.with_client(fn)
  local client = M.client()
  if not client then
    local cfg = config.get()
    local lsp_cfg = vim.lsp.config.tether
    if not lsp_cfg then
      ui.notify('no "tether" LSP config (is the plugin on the runtimepath?)', vim.log.levels.ERROR)
      return
    end
    local buf = api.nvim_get_current_buf()
    local name = api.nvim_buf_get_name(buf)
    local root = vim.fs.root(name ~= '' and name or vim.fn.getcwd(), cfg.root_markers)
    if not root then
      root = vim.fs.root(vim.fn.getcwd(), cfg.root_markers)
    end
    if not root then
      ui.notify(
        ('no workspace here: none of %s found above %s'):format(table.concat(cfg.root_markers, ', '), vim.fn.getcwd()),
        vim.log.levels.ERROR
      )
      return
    end
    local start_cfg = vim.deepcopy(lsp_cfg)
    start_cfg.root_dir = root
    local attach = vim.bo[buf].buftype == '' and name ~= '' and inside(root, vim.fs.normalize(name))
    local id = vim.lsp.start(start_cfg, { bufnr = buf, attach = attach })
    client = id and vim.lsp.get_client_by_id(id)
    if not client then
      ui.notify(('could not start the server (%s); see :checkhealth tether'):format(table.concat(cfg.cmd, ' ')), vim.log.levels.ERROR)
      return
    end
  end
  if client.initialized then
    fn(client)
    return
  end
  -- Bounded wait for initialize without blocking the editor.
  local timer = assert(vim.uv.new_timer())
  local waited = 0
  timer:start(50, 50, vim.schedule_wrap(function()
    waited = waited + 50
    if client.initialized then
      timer:stop()
      timer:close()
      fn(client)
    elseif client:is_stopped() or waited >= 20000 then
      timer:stop()
      timer:close()
      ui.notify('the server did not finish initializing; see :checkhealth tether and :LspLog', vim.log.levels.ERROR)
    end
  end))
end

--- Execute a Tether command on the server with one params object.
---@param command string protocol.CMD_*
---@param params table|nil
---@param on_result fun(result: any, client: vim.lsp.Client)|nil
function M.exec(command, params, on_result)
  M.with_client(function(client)
    local args = { (params and next(params)) and params or vim.empty_dict() }
    -- exec_cmd flushes debounced didChange of the current buffer only; a checkpoint must see
    -- the unsaved edits of every buffer.
    pcall(function()
      require('vim.lsp._changetracking').flush(client)
    end)
    require('tether.cursor').send_now()
    client:exec_cmd({ title = command, command = command, arguments = args }, { bufnr = 0 }, function(err, result)
      if err then
        local reason = type(err.data) == 'table' and err.data.reason or nil
        local level = reason == protocol.ERR_NO_CHECKPOINT and vim.log.levels.WARN or vim.log.levels.ERROR
        ui.notify(('%s failed: %s'):format(command, err.message or vim.inspect(err)), level)
        return
      end
      if on_result then
        on_result(result, client)
      end
    end)
  end)
end

-- Actions (also the Lua API behind :Tether) ------------------------------------------------

---@param opts {checkpoint: integer|nil}|nil
function M.resume(opts)
  local params = {}
  if opts and opts.checkpoint then
    params.checkpoint = opts.checkpoint
  end
  state.user_asked()
  M.exec(protocol.CMD_RESUME, params, function(result, client)
    if type(result) ~= 'table' then
      return
    end
    local parts = { ('opened %d file%s'):format(#(result.opened or {}), #(result.opened or {}) == 1 and '' or 's') }
    if result.restoredBuffers and #result.restoredBuffers > 0 then
      parts[#parts + 1] = ('restored %d unsaved buffer%s'):format(#result.restoredBuffers, #result.restoredBuffers == 1 and '' or 's')
    end
    if type(result.terminal) == 'table' then
      parts[#parts + 1] = (result.terminal.recreated and 'recreated' or 'attached') .. ' tmux ' .. tostring(result.terminal.session)
      -- Which conversation each agent pane resumes (typed and waiting for Enter unless the user's
      -- config says run).
      for _, a in ipairs(type(result.terminal.agents) == 'table' and result.terminal.agents or {}) do
        local what = type(a.conversation) == 'string' and ('conversation ' .. a.conversation) or 'its chat history'
        parts[#parts + 1] = ('%s resumes %s (window %s, %s)'):format(
          tostring(a.agent), what, tostring(a.window), a.action == 'ran' and 'running' or 'press Enter to run'
        )
      end
      -- What the snapshot could not record (no /proc and no psutil…): said, never silent.
      for _, w in ipairs(type(result.terminal.warnings) == 'table' and result.terminal.warnings or {}) do
        if type(w) == 'string' then
          parts[#parts + 1] = w
        end
      end
    end
    for _, s in ipairs(type(result.skippedBuffers) == 'table' and result.skippedBuffers or {}) do
      parts[#parts + 1] = ('kept %s as on disk (%s)'):format(tostring(s.path), tostring(s.reason))
    end
    -- Why no terminal came back (no snapshot of the tmux session was ever recorded…).
    if type(result.noTerminal) == 'string' and result.noTerminal ~= '' then
      parts[#parts + 1] = 'no terminal: ' .. result.noTerminal
    end
    local cp = (type(result.checkpoint) == 'number') and (' checkpoint #' .. result.checkpoint) or ''
    local nothing = #(result.opened or {}) == 0
      and #(result.restoredBuffers or {}) == 0
      and type(result.terminal) ~= 'table'
    if nothing then
      local why = type(result.noTerminal) == 'string' and result.noTerminal ~= '' and result.noTerminal
        or 'no terminal'
      ui.notify(('nothing to resume%s: no files in progress, no unsaved buffers; %s'):format(
        cp ~= '' and (' at' .. cp) or '', why
      ))
    else
      ui.notify(('resumed%s: %s'):format(cp, table.concat(parts, '; ')))
    end
    state.fire('TetherResume', { client_id = client.id, result = result })
  end)
end

---@param message string|nil
function M.checkpoint(message)
  local params = {}
  if message and message ~= '' then
    params.message = message
  end
  M.exec(protocol.CMD_CHECKPOINT, params, function(info, client)
    if type(info) ~= 'table' or type(info.id) ~= 'number' then
      ui.notify('nothing to checkpoint')
      return
    end
    ui.notify(('checkpoint #%d (%d file%s changed)'):format(info.id, #(info.files or {}), #(info.files or {}) == 1 and '' or 's'))
    state.note_checkpoint(client.id, info)
  end)
end

---@param opts {done: string, next: string[]|nil, task: string|nil}
function M.step(opts)
  if type(opts) ~= 'table' or type(opts.done) ~= 'string' or opts.done == '' then
    ui.notify('step needs a description of what was done', vim.log.levels.ERROR)
    return
  end
  local params = { done = opts.done }
  if opts.next and #opts.next > 0 then
    params.next = opts.next
  end
  if opts.task and opts.task ~= '' then
    params.task = opts.task
  end
  state.user_asked()
  M.exec(protocol.CMD_STEP, params, function(info, client)
    if type(info) == 'table' and type(info.id) == 'number' then
      ui.notify(('step recorded as checkpoint #%d'):format(info.id))
      state.note_checkpoint(client.id, info)
    end
  end)
end

function M.show_status()
  M.exec(protocol.CMD_STATUS, nil, function(st, client)
    if type(st) ~= 'table' then
      return
    end
    state.set_status(client.id, st)
    pcall(vim.cmd, 'redrawstatus!')
    -- The server's own wording (the same counts as `tether status` and VS Code).
    local lines = { tostring(st.text), 'Workspace: ' .. tostring(st.workspace) }
    if type(st.tooltip) == 'string' and st.tooltip ~= '' then
      vim.list_extend(lines, vim.split(st.tooltip, '\n', { plain = true }))
    else
      lines[#lines + 1] = ('files in progress: %s, unsaved buffers: %s'):format(
        tostring(st.filesInProgress),
        tostring(st.dirtyBuffers)
      )
    end
    if type(st.tmux) ~= 'table' then
      lines[#lines + 1] = 'Terminal: tmux off'
    end
    if st.resumeAvailable then
      lines[#lines + 1] = 'Resume available: :Tether resume'
    end
    ui.notify(table.concat(lines, '\n'))
  end)
end

function M.start_session()
  M.exec(protocol.CMD_START_SESSION, nil, function(result)
    if type(result) == 'table' then
      ui.notify(('%s tmux session %s'):format(result.created and 'created' or 'attached to', tostring(result.session)))
    end
  end)
end

--- Fetch the timeline; `cb(checkpoints)` newest first.
function M.fetch_timeline(cb)
  M.exec(protocol.CMD_TIMELINE, { limit = config.get().timeline_limit }, function(result, client)
    local cps = type(result) == 'table' and type(result.checkpoints) == 'table' and result.checkpoints or {}
    state.timeline_ids[client.id] = vim.tbl_map(function(c)
      return c.id
    end, cps)
    cb(cps, client)
  end)
end

--- Path of a buffer relative to the client's workspace, or nil.
local function rel_path(client, bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  if name == '' or vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  return vim.fs.relpath(client.root_dir or vim.fn.getcwd(), vim.fs.normalize(name))
end

--- Compare a file with its content at a checkpoint (default: latest checkpoint, current file).
---@param opts {checkpoint: integer|nil, path: string|nil}|nil
function M.diff(opts)
  opts = opts or {}
  M.with_client(function(client)
    local win = api.nvim_get_current_win()
    if opts.path then
      local abs = vim.fs.joinpath(client.root_dir or vim.fn.getcwd(), opts.path)
      vim.cmd.edit(vim.fn.fnameescape(abs))
      win = api.nvim_get_current_win()
    end
    local path = rel_path(client, api.nvim_win_get_buf(win))
    if not path then
      ui.notify('the current buffer is not a file in the workspace', vim.log.levels.ERROR)
      return
    end
    local function show(n)
      M.exec(protocol.CMD_FILE_AT, { checkpoint = n, path = path }, function(file)
        if type(file) ~= 'table' then
          return
        end
        if file.binary then
          ui.notify(('%s is binary at checkpoint #%d'):format(path, n), vim.log.levels.WARN)
          return
        end
        file.path = file.path or path
        ui.open_diff(win, n, file)
      end)
    end
    if opts.checkpoint then
      show(opts.checkpoint)
    else
      M.exec(protocol.CMD_TIMELINE, { limit = 1 }, function(result)
        local latest = type(result) == 'table' and type(result.checkpoints) == 'table' and result.checkpoints[1]
        if not latest then
          ui.notify('no checkpoint yet', vim.log.levels.WARN)
          return
        end
        show(latest.id)
      end)
    end
  end)
end

--- Loaded buffers with unsaved edits among `files` (FileDiff[]) of the client's workspace.
local function modified_buffers(client, files)
  local out = {}
  for _, f in ipairs(files) do
    local b = vim.fn.bufnr(vim.fs.joinpath(client.root_dir or vim.fn.getcwd(), f.path))
    if b > 0 and api.nvim_buf_is_loaded(b) and vim.bo[b].modified then
      out[#out + 1] = { path = f.path, buf = b }
    end
  end
  return out
end

--- Restore files from a checkpoint: preview the diff, confirm, restore, reload buffers.
--- Buffers with unsaved edits are named in the question, before anything is written; after
--- the restore they are reloaded (`u` brings the unsaved edits back), so no W12 prompt follows.
---@param opts {checkpoint: integer, paths: string[]|nil}
function M.restore(opts)
  if type(opts) ~= 'table' or type(opts.checkpoint) ~= 'number' then
    ui.notify('restore needs a checkpoint number, e.g. :Tether restore 12', vim.log.levels.ERROR)
    return
  end
  local params = { checkpoint = opts.checkpoint, dryRun = true }
  if opts.paths and #opts.paths > 0 then
    params.paths = opts.paths
  end
  M.exec(protocol.CMD_RESTORE, params, function(preview, client)
    local files = type(preview) == 'table' and type(preview.files) == 'table' and preview.files or {}
    if #files == 0 then
      ui.notify(('nothing to restore: the workspace matches checkpoint #%d'):format(opts.checkpoint))
      return
    end
    local function n_files(n)
      return ('%d file%s'):format(n, n == 1 and '' or 's')
    end
    local title = ('Restore from checkpoint #%d: %s'):format(opts.checkpoint, n_files(#files))
    local buf, win = ui.open_diff_preview(title, files)
    -- The preview must be on screen before the question takes the command line.
    vim.cmd('redraw')
    local modified = modified_buffers(client, files)
    local prompt = title .. '?'
    local choices = { { label = 'Restore ' .. n_files(#files), paths = params.paths } }
    if #modified > 0 then
      local names = table.concat(vim.tbl_map(function(m)
        return m.path
      end, modified), ', ')
      prompt = ('%s %s ha%s unsaved edits here: restoring replaces them (u in the buffer brings them back).'):format(
        title .. '.',
        names,
        #modified == 1 and 's' or 've'
      )
      choices[1].label = ('Restore %s, replacing the unsaved edits in %s'):format(n_files(#files), names)
      local skip = {}
      for _, m in ipairs(modified) do
        skip[m.path] = true
      end
      local others = vim.tbl_map(function(f)
        return f.path
      end, vim.tbl_filter(function(f)
        return not skip[f.path]
      end, files))
      if #others > 0 then
        choices[#choices + 1] = { label = ('Restore only the other %s'):format(n_files(#others)), paths = others }
      end
    end
    choices[#choices + 1] = { label = 'Cancel' }
    vim.ui.select(choices, {
      prompt = prompt,
      kind = 'tether.confirm',
      format_item = function(c)
        return c.label
      end,
    }, function(choice)
      if api.nvim_win_is_valid(win) and api.nvim_win_get_buf(win) == buf then
        pcall(api.nvim_win_close, win, true)
      end
      if not choice or choice.label == 'Cancel' then
        return
      end
      local run = vim.deepcopy(params)
      run.dryRun = false
      run.paths = choice.paths
      M.exec(protocol.CMD_RESTORE, run, function(result)
        local restored = type(result) == 'table' and type(result.files) == 'table' and result.files or files
        local wrote = {}
        for _, f in ipairs(restored) do
          wrote[f.path] = true
        end
        -- Reloaded first (undoable), so that :checktime finds nothing to ask about.
        for _, m in ipairs(modified) do
          if wrote[m.path] and api.nvim_buf_is_valid(m.buf) then
            api.nvim_buf_call(m.buf, function()
              vim.cmd('silent edit!')
            end)
          end
        end
        vim.cmd('checktime')
        local undo = type(result) == 'table' and result.undoCheckpoint
        ui.notify(
          ('restored %s from checkpoint #%d%s'):format(
            n_files(#restored),
            opts.checkpoint,
            type(undo) == 'number' and ('; undo with :Tether restore ' .. undo) or ''
          )
        )
      end)
    end)
  end)
end

--- Changes between a checkpoint and the live workspace, in a preview buffer.
function M.changes_since(n)
  M.exec(protocol.CMD_DIFF, { from = n }, function(result)
    local files = type(result) == 'table' and type(result.files) == 'table' and result.files or {}
    if #files == 0 then
      ui.notify(('no changes since checkpoint #%d'):format(n))
      return
    end
    ui.open_diff_preview(('Changes since checkpoint #%d'):format(n), files)
  end)
end

--- Pick a checkpoint in vim.ui.select, then what to do with it.
function M.timeline()
  M.fetch_timeline(function(cps)
    if #cps == 0 then
      ui.notify('no checkpoint yet')
      return
    end
    vim.ui.select(cps, { prompt = 'Tether timeline', kind = 'tether.timeline', format_item = ui.format_checkpoint }, function(cp)
      if not cp then
        return
      end
      local actions = {
        { label = 'Compare current file with #' .. cp.id, run = function() M.diff({ checkpoint = cp.id }) end },
        { label = 'Show changes since #' .. cp.id, run = function() M.changes_since(cp.id) end },
        { label = 'Restore files from #' .. cp.id .. '…', run = function() M.restore({ checkpoint = cp.id }) end },
        { label = 'Resume from #' .. cp.id, run = function() M.resume({ checkpoint = cp.id }) end },
      }
      vim.ui.select(actions, {
        prompt = ui.format_checkpoint(cp),
        kind = 'tether.action',
        format_item = function(a)
          return a.label
        end,
      }, function(action)
        if action then
          action.run()
        end
      end)
    end)
  end)
end

return M
