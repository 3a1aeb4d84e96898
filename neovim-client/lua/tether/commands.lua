--- `:Tether {subcommand} [args]`: parsing and completion.
local state = require('tether.state')

local M = {}

local function ui()
  return require('tether.ui')
end

local function tether()
  return require('tether')
end

local function parse_checkpoint(word, sub)
  if word == nil then
    return nil, true
  end
  local n = tonumber(word)
  if not n or n < 1 or n ~= math.floor(n) then
    ui().notify(('%s: checkpoint must be a positive number, got %q'):format(sub, word), vim.log.levels.ERROR)
    return nil, false
  end
  return n, true
end

--- Words of `text` split as a shell would: "…" and '…' group words and are removed, a backslash
--- keeps the next character. Each word says whether any of it was quoted (then `--next` is text).
---@return {text: string, quoted: boolean}[]|nil, string|nil
function M.split_words(text)
  local words, cur, quote, quoted, any = {}, {}, nil, false, false
  local i, n = 1, #text
  local function flush()
    if any then
      words[#words + 1] = { text = table.concat(cur), quoted = quoted }
    end
    cur, quoted, any = {}, false, false
  end
  while i <= n do
    local ch = text:sub(i, i)
    if quote then
      if ch == quote then
        quote = nil
      elseif ch == '\\' and quote == '"' and i < n then
        i = i + 1
        cur[#cur + 1] = text:sub(i, i)
      else
        cur[#cur + 1] = ch
      end
    elseif ch == '"' or ch == "'" then
      quote, quoted, any = ch, true, true
    elseif ch == '\\' and i < n then
      i = i + 1
      cur[#cur + 1] = text:sub(i, i)
      any = true
    elseif ch:match('%s') then
      flush()
    else
      cur[#cur + 1] = ch
      any = true
    end
    i = i + 1
  end
  if quote then
    return nil, ('unclosed %s quote'):format(quote)
  end
  flush()
  return words, nil
end

--- Split `wrote tests --next fix lint --next "update docs" --task 'refactor auth'` like the
--- CLI's `tether step --done MSG --next STEP --task TEXT` (quotes group words, as in a shell).
---@return {done: string, next: string[], task: string|nil}|nil, string|nil
function M.parse_step(text)
  local out = { next = {} }
  local flag, words = 'done', {}
  local function flush()
    local t = table.concat(words, ' ')
    words = {}
    if flag == 'done' then
      out.done = t
    elseif flag == 'next' then
      if t ~= '' then
        out.next[#out.next + 1] = t
      end
    elseif flag == 'task' then
      out.task = t
    else
      return ('unknown option --%s (use --next or --task)'):format(flag)
    end
  end
  local split, split_err = M.split_words(text)
  if not split then
    return nil, split_err
  end
  for _, word in ipairs(split) do
    local f = not word.quoted and word.text:match('^%-%-(%a+)$')
    if f then
      local err = flush()
      if err then
        return nil, err
      end
      flag = f
    else
      words[#words + 1] = word.text
    end
  end
  local err = flush()
  if err then
    return nil, err
  end
  if not out.done or out.done == '' then
    return nil, 'say what was done, e.g. :Tether step wrote tests --next fix lint'
  end
  return out, nil
end

M.subcommands = {
  resume = {
    desc = 'reopen files, unsaved edits, the tmux terminal and next steps',
    run = function(args)
      local n, ok = parse_checkpoint(args[1], 'resume')
      if ok then
        tether().resume({ checkpoint = n })
      end
    end,
    complete_checkpoints = true,
  },
  checkpoint = {
    desc = 'checkpoint now, with an optional message',
    run = function(args)
      tether().checkpoint(table.concat(args, ' '))
    end,
  },
  timeline = {
    desc = 'pick a checkpoint to diff, restore or resume',
    run = function()
      tether().timeline()
    end,
  },
  diff = {
    desc = 'compare a file with a checkpoint: diff [N] [path]',
    run = function(args)
      local n, ok = parse_checkpoint(args[1], 'diff')
      if ok then
        tether().diff({ checkpoint = n, path = args[2] })
      end
    end,
    complete_checkpoints = true,
  },
  restore = {
    desc = 'restore files from checkpoint N (preview first): restore N [paths…]',
    run = function(args)
      local n, ok = parse_checkpoint(args[1], 'restore')
      if not ok then
        return
      end
      if not n then
        ui().notify('restore needs a checkpoint number, e.g. :Tether restore 12', vim.log.levels.ERROR)
        return
      end
      tether().restore({ checkpoint = n, paths = vim.list_slice(args, 2) })
    end,
    complete_checkpoints = true,
  },
  step = {
    desc = 'record an agent step: step DONE [--next STEP]… [--task TEXT]',
    run = function(_, raw)
      if vim.trim(raw) == '' then
        vim.ui.input({ prompt = 'Done: ' }, function(done)
          if not done or vim.trim(done) == '' then
            return
          end
          vim.ui.input({ prompt = 'Next steps (separated by ;): ' }, function(next_text)
            local steps = {}
            for _, s in ipairs(vim.split(next_text or '', ';', { plain = true })) do
              if vim.trim(s) ~= '' then
                steps[#steps + 1] = vim.trim(s)
              end
            end
            tether().step({ done = vim.trim(done), next = steps })
          end)
        end)
        return
      end
      local parsed, err = M.parse_step(raw)
      if not parsed then
        ui().notify('step: ' .. err, vim.log.levels.ERROR)
        return
      end
      tether().step(parsed)
    end,
  },
  status = {
    desc = 'show the workspace status',
    run = function()
      tether().show_status()
    end,
  },
  start = {
    desc = 'create or attach the tmux session and open it in a terminal',
    run = function()
      tether().start_session()
    end,
  },
}

function M.names()
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return names
end

---@param opts vim.api.keyset.create_user_command.command_args
function M.run(opts)
  local args = opts.fargs
  local name = args[1]
  if not name then
    tether().show_status()
    return
  end
  local sub = M.subcommands[name]
  if not sub then
    ui().notify(('unknown subcommand %q; use one of: %s'):format(name, table.concat(M.names(), ', ')), vim.log.levels.ERROR)
    return
  end
  local raw = opts.args:gsub('^%s*%S+%s?', '', 1)
  sub.run(vim.list_slice(args, 2), raw)
end

--- Completion for `:Tether`: subcommands, then checkpoint numbers from the last timeline.
function M.complete(arglead, cmdline, _)
  local words = vim.split(cmdline:gsub('^%s*%S+%s*', '', 1), '%s+', { trimempty = false })
  if #words <= 1 then
    return vim.tbl_filter(function(n)
      return vim.startswith(n, arglead)
    end, M.names())
  end
  local sub = M.subcommands[words[1]]
  if sub and sub.complete_checkpoints and #words == 2 then
    local ids = {}
    local client = require('tether').client()
    for _, id in ipairs(client and state.timeline_ids[client.id] or {}) do
      local s = tostring(id)
      if vim.startswith(s, arglead) then
        ids[#ids + 1] = s
      end
    end
    return ids
  end
  if words[1] == 'diff' and #words == 3 or words[1] == 'restore' and #words >= 3 then
    return vim.fn.getcompletion(arglead, 'file')
  end
  return {}
end

--- Define `:Tether` (plugin/tether.lua does at startup; setup() too, for plugin managers that
--- put neovim-client/ on the runtimepath after plugin/ files were sourced).
--- `<Plug>` mappings for the main commands (no keys are mapped by the plugin): e.g.
--- `vim.keymap.set('n', '<leader>tr', '<Plug>(TetherResume)')`. See |tether-mappings|.
M.plug_mappings = {
  { '<Plug>(TetherResume)', 'resume', 'resume the session' },
  { '<Plug>(TetherCheckpoint)', 'checkpoint', 'checkpoint now' },
  { '<Plug>(TetherTimeline)', 'timeline', 'pick a checkpoint' },
  { '<Plug>(TetherDiff)', 'diff', 'compare the file with the latest checkpoint' },
  { '<Plug>(TetherStep)', 'step', 'record a step' },
  { '<Plug>(TetherStatus)', 'status', 'show the status' },
  { '<Plug>(TetherStart)', 'start', 'start or attach the agent session' },
}

function M.create()
  for _, m in ipairs(M.plug_mappings) do
    vim.keymap.set('n', m[1], '<Cmd>Tether ' .. m[2] .. '<CR>', { silent = true, desc = 'Tether: ' .. m[3] })
  end
  vim.api.nvim_create_user_command('Tether', function(opts)
    M.run(opts)
  end, {
    nargs = '*',
    desc = 'Tether: resume | checkpoint | timeline | restore | diff | step | status | start',
    complete = function(arglead, cmdline, pos)
      return M.complete(arglead, cmdline, pos)
    end,
  })
end

return M
