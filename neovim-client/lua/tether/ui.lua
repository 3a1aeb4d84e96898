--- Windows and buffers: next-steps float, terminal split, diff split, previews, timeline items.
local config = require('tether.config')

local M = {}

local api = vim.api

function M.notify(msg, level)
  vim.notify('tether: ' .. msg, level or vim.log.levels.INFO)
end

--- "2m ago" from an ISO 8601 UTC time ("2026-11-22T06:00:00Z", fractions and offsets tolerated).
---@param iso string|nil
---@param now integer|nil seconds since the epoch (tests)
function M.relative_time(iso, now)
  if type(iso) ~= 'string' then
    return '?'
  end
  local y, mo, d, h, mi, s = iso:match('^(%d+)%-(%d+)%-(%d+)[T ](%d+):(%d+):(%d+)')
  if not y then
    return iso
  end
  -- os.time() reads a table as local time; correct by the local UTC offset.
  local t = { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h), min = tonumber(mi), sec = tonumber(s) }
  local as_local = os.time(t)
  local offset = os.time(os.date('*t', as_local)) - os.time(os.date('!*t', as_local))
  local epoch = as_local + offset
  local delta = (now or os.time()) - epoch
  if delta < 45 then
    return 'just now'
  elseif delta < 3600 then
    return ('%dm ago'):format(math.max(1, math.floor(delta / 60 + 0.5)))
  elseif delta < 86400 then
    return ('%dh ago'):format(math.floor(delta / 3600 + 0.5))
  end
  return ('%dd ago'):format(math.floor(delta / 86400 + 0.5))
end

--- One line for a CheckpointInfo in the timeline picker.
function M.format_checkpoint(cp)
  local files = type(cp.files) == 'table' and #cp.files or 0
  local msg = (type(cp.message) == 'string' and cp.message ~= '') and ('  ' .. cp.message) or ''
  local line = ('#%-4d %-9s %-8s %2d file%s%s'):format(
    cp.id,
    M.relative_time(cp.time),
    tostring(cp.trigger),
    files,
    files == 1 and ' ' or 's',
    msg
  )
  return (line:gsub('%s+$', ''))
end

-- Next steps ---------------------------------------------------------------------------------

M.next_steps_win = nil

local SHIPPED = " (from the repository's .agent-session.json, not recorded on this machine)"

local function next_steps_lines(p)
  local lines = {}
  local function add(s)
    lines[#lines + 1] = s
  end
  local shipped = type(p.shipped) == 'table' and p.shipped or {}
  if type(p.task) == 'string' and p.task ~= '' then
    add('# Task' .. (vim.tbl_contains(shipped, 'task') and SHIPPED or ''))
    add(p.task)
    add('')
  end
  add('# Next steps' .. (vim.tbl_contains(shipped, 'nextSteps') and SHIPPED or ''))
  local steps = type(p.nextSteps) == 'table' and p.nextSteps or {}
  if #steps == 0 then
    add('(none recorded)')
  end
  for i, step in ipairs(steps) do
    add(('%d. %s'):format(i, tostring(step)))
  end
  local files = type(p.filesInProgress) == 'table' and p.filesInProgress or {}
  if #files > 0 then
    add('')
    add('# Files in progress')
    for _, f in ipairs(files) do
      add('- ' .. tostring(f))
    end
  end
  local runs = type(p.runs) == 'table' and p.runs or {}
  if #runs > 0 then
    add('')
    add('# Runs')
    for _, r in ipairs(runs) do
      local mark = r.stale and '[stale]' or '[valid]'
      add(('- %s %s'):format(mark, tostring(r.summary or r.command)))
    end
  end
  -- (The payload's one-line `summary` repeats the above: it is for notifications, not here.)
  local recent = type(p.recentCommands) == 'table' and p.recentCommands or {}
  if #recent > 0 then
    add('')
    add('# Recent commands')
    for _, r in ipairs(recent) do
      if type(r) == 'table' and type(r.commands) == 'table' then
        add(('In the terminal %s:'):format(tostring(r.where)))
        for _, c in ipairs(r.commands) do
          add('    $ ' .. tostring(c))
        end
      end
    end
  end
  return lines
end

---@param params table tether/showNextSteps payload
function M.show_next_steps(params)
  local cfg = config.get().next_steps
  if M.next_steps_win and api.nvim_win_is_valid(M.next_steps_win) then
    api.nvim_win_close(M.next_steps_win, true)
  end
  local lines = next_steps_lines(params)
  local buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].filetype = 'markdown'
  local width = 20
  for _, l in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(l) + 2)
  end
  width = math.min(width, cfg.max_width, math.max(20, vim.o.columns - 4))
  local height = math.min(#lines, math.max(1, vim.o.lines - 6))
  -- Take focus only when answering the user's own :Tether resume / step; never mid-typing.
  local focus = cfg.focus and require('tether.state').user_asked_recently()
  local win = api.nvim_open_win(buf, focus, {
    relative = 'editor',
    width = width,
    height = height,
    row = math.max(0, math.floor((vim.o.lines - height) / 2) - 1),
    col = math.max(0, math.floor((vim.o.columns - width) / 2)),
    style = 'minimal',
    border = cfg.border,
    title = ' Tether: next steps ',
    title_pos = 'center',
  })
  vim.wo[win].wrap = true
  for _, key in ipairs({ 'q', '<Esc>' }) do
    vim.keymap.set('n', key, function()
      if api.nvim_win_is_valid(win) then
        api.nvim_win_close(win, true)
      end
    end, { buffer = buf, nowait = true, desc = 'Close Tether next steps' })
  end
  if not focus then
    -- Unfocused, it closes once the cursor moves elsewhere, like a hover window.
    local anchor_win = api.nvim_get_current_win()
    local anchor_pos = api.nvim_win_get_cursor(anchor_win)
    api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI', 'InsertEnter', 'BufEnter' }, {
      group = api.nvim_create_augroup('tether.next_steps', { clear = true }),
      callback = function(ev)
        if not api.nvim_win_is_valid(win) then
          return true
        end
        local cur = api.nvim_get_current_win()
        if cur == win then
          return
        end
        if ev.event == 'CursorMoved' and cur == anchor_win then
          local pos = api.nvim_win_get_cursor(cur)
          if pos[1] == anchor_pos[1] and pos[2] == anchor_pos[2] then
            return -- a stale CursorMoved from before the float opened
          end
        end
        api.nvim_win_close(win, true)
        return true
      end,
    })
  end
  M.next_steps_win = win
  return win
end

-- Terminal -----------------------------------------------------------------------------------

-- tmux options that take a value, before the command name
local TMUX_VALUE_OPTS = { ['-S'] = true, ['-L'] = true, ['-f'] = true, ['-c'] = true, ['-T'] = true }

--- Whether a tmux argv only attaches a client: `tmux [-S sock] attach-session -t NAME`, no other
--- command (new-session or run-shell would run shell text) and no `;` chaining a second one.
---@param argv string[]
function M.is_tmux_attach(argv)
  local i = 2
  while argv[i] and argv[i]:sub(1, 1) == '-' do
    i = i + (TMUX_VALUE_OPTS[argv[i]] and 2 or 1)
  end
  if not vim.list_contains({ 'attach-session', 'attach', 'a' }, argv[i]) then
    return false
  end
  for j = i + 1, #argv do
    if argv[j]:find(';%s*$') then
      return false
    end
  end
  return true
end

---@param params table tether/openTerminal payload {name, argv, cwd}
---@return integer|nil bufnr
function M.open_terminal(params)
  local cfg = config.get().terminal
  local argv = params and params.argv
  local ok = type(argv) == 'table' and #argv > 0
  if ok then
    for _, a in ipairs(argv) do
      ok = ok and type(a) == 'string'
    end
  end
  if not ok then
    M.notify('openTerminal without a valid argv, ignored', vim.log.levels.ERROR)
    return nil
  end
  -- The server only ever sends `tmux attach …`; anything else is refused rather than run.
  local exe = vim.fs.basename(argv[1])
  if not vim.list_contains(cfg.allowed_commands, exe) then
    M.notify(
      ("refusing to run '%s' from the server (allowed: %s; see terminal.allowed_commands)"):format(
        exe,
        table.concat(cfg.allowed_commands, ', ')
      ),
      vim.log.levels.ERROR
    )
    return nil
  end
  if exe == 'tmux' and not M.is_tmux_attach(argv) then
    M.notify(
      ('refusing to run a tmux command other than attach-session: %s'):format(table.concat(argv, ' ')),
      vim.log.levels.ERROR
    )
    return nil
  end
  local name = type(params.name) == 'string' and params.name or argv[#argv]
  -- Reuse a live terminal already attached to this session instead of stacking clients.
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_valid(b) and vim.b[b].tether_terminal == name then
      local job = vim.b[b].terminal_job_id
      if job and vim.fn.jobwait({ job }, 0)[1] == -1 then
        local wins = vim.fn.win_findbuf(b)
        if #wins == 0 then
          local prev = api.nvim_get_current_win()
          vim.cmd(('%s %dsplit'):format(cfg.position, cfg.size))
          api.nvim_win_set_buf(0, b)
          if not cfg.focus then
            api.nvim_set_current_win(prev)
          end
        end
        return b
      end
    end
  end
  local cmd = vim.deepcopy(argv)
  if vim.env.TMUX and exe == 'tmux' then
    -- Inside tmux already: tmux refuses to nest unless $TMUX is unset for the client.
    cmd = vim.list_extend({ 'env', '-u', 'TMUX' }, cmd)
  end
  local cwd = type(params.cwd) == 'string' and vim.fn.isdirectory(params.cwd) == 1 and params.cwd or nil
  local prev = api.nvim_get_current_win()
  vim.cmd(('%s %dnew'):format(cfg.position, cfg.size))
  local buf = api.nvim_get_current_buf()
  local job = vim.fn.jobstart(cmd, { term = true, cwd = cwd })
  if job <= 0 then
    api.nvim_win_close(0, true)
    M.notify(('could not start terminal: %s'):format(table.concat(argv, ' ')), vim.log.levels.ERROR)
    return nil
  end
  vim.b[buf].tether_terminal = name
  if not cfg.focus and api.nvim_win_is_valid(prev) then
    api.nvim_set_current_win(prev)
  end
  return buf
end

-- Scratch buffers ----------------------------------------------------------------------------

local function scratch(lines, ft, name)
  local buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = 'wipe'
  if ft and ft ~= '' then
    vim.bo[buf].filetype = ft
  end
  if name then
    pcall(api.nvim_buf_set_name, buf, name)
  end
  return buf
end

--- Split the text of a file as Neovim holds it: no phantom last line for a final newline.
function M.text_lines(text)
  if type(text) ~= 'string' or text == '' then
    return {}
  end
  local lines = vim.split(text, '\n', { plain = true })
  if lines[#lines] == '' then
    table.remove(lines)
  end
  for i, l in ipairs(lines) do
    lines[i] = l:gsub('\r$', '')
  end
  return lines
end

--- Show checkpoint content of a file beside the window showing it, both in diff mode.
---@param win integer window with the live file
---@param checkpoint integer
---@param file table tether.fileAt result
function M.open_diff(win, checkpoint, file)
  local live_buf = api.nvim_win_get_buf(win)
  local lines = file.exists and M.text_lines(file.text) or {}
  local buf = scratch(lines, vim.bo[live_buf].filetype, ('tether://%d/%s'):format(checkpoint, file.path))
  api.nvim_open_win(buf, true, { split = 'left', win = win })
  vim.b[buf].tether_checkpoint = checkpoint
  vim.cmd('diffthis')
  api.nvim_win_call(win, function()
    vim.cmd('diffthis')
  end)
  -- Leaving the comparison turns diff mode off in the live window too.
  api.nvim_create_autocmd('BufWipeout', {
    buffer = buf,
    once = true,
    callback = function()
      vim.schedule(function()
        if api.nvim_win_is_valid(win) then
          api.nvim_win_call(win, function()
            vim.cmd('diffoff')
          end)
        end
      end)
    end,
  })
  if not file.exists then
    M.notify(('%s did not exist at checkpoint #%d'):format(file.path, checkpoint), vim.log.levels.WARN)
  end
  return buf
end

--- A read-only buffer with the unified diff of a set of FileDiff entries (restore preview).
---@param title string
---@param files table[] FileDiff[]
function M.open_diff_preview(title, files)
  local lines = { '# ' .. title, '' }
  for _, f in ipairs(files) do
    if f.diff == nil or f.diff == vim.NIL then
      lines[#lines + 1] = ('%s %s (%s)'):format(f.status, f.path, f.binary and 'binary' or 'too large to show')
    else
      vim.list_extend(lines, M.text_lines(f.diff))
    end
  end
  vim.cmd('tab split')
  local buf = scratch(lines, 'diff', nil)
  api.nvim_win_set_buf(0, buf)
  return buf, api.nvim_get_current_win()
end

return M
