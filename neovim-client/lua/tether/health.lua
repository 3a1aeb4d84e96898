--- `:checkhealth tether`
local M = {}

local health = vim.health

local function run(argv)
  local ok, obj = pcall(vim.system, argv, { text = true })
  if not ok then
    return nil, tostring(obj)
  end
  local res = obj:wait(10000)
  if res.signal ~= 0 and res.code == 0 then
    return nil, 'killed (timeout?)'
  end
  if res.code ~= 0 then
    return nil, vim.trim((res.stderr or '') .. (res.stdout or ''))
  end
  return vim.trim((res.stdout or '') .. (res.stderr or '')), nil
end

--- The server command without its trailing `lsp` subcommand, plus `--version`.
local function version_argv(cmd)
  local argv = {}
  for _, a in ipairs(cmd) do
    if a == 'lsp' then
      break
    end
    argv[#argv + 1] = a
  end
  argv[#argv + 1] = '--version'
  return argv
end

--- Where the server keeps its store: $TETHER_STATE_DIR (cmd_env or Neovim's), or platformdirs'
--- user_state_dir("tether") ($XDG_STATE_HOME/tether on Linux). Never init_options: editor settings
--- may come from a repository, so the server ignores a stateDir there.
local function state_dir(cfg)
  local env = (cfg.cmd_env and cfg.cmd_env.TETHER_STATE_DIR) or vim.env.TETHER_STATE_DIR
  if env and env ~= '' then
    return vim.fs.normalize(env), '$TETHER_STATE_DIR'
  end
  local xdg = vim.env.XDG_STATE_HOME
  if not xdg or xdg == '' then
    xdg = vim.fs.joinpath(vim.uv.os_homedir(), '.local', 'state')
  end
  return vim.fs.joinpath(xdg, 'tether'), 'default'
end

local function check_state_dir(cfg)
  health.start('tether: state directory')
  local dir, source = state_dir(cfg)
  local stat = vim.uv.fs_stat(dir)
  if stat then
    if stat.type ~= 'directory' then
      health.error(('%s (%s) is not a directory'):format(dir, source))
      return
    end
    local probe = vim.fs.joinpath(dir, ('.health-%d'):format(vim.uv.os_getpid()))
    local fd = vim.uv.fs_open(probe, 'w', 384)
    if not fd then
      health.error(('%s (%s) is not writable'):format(dir, source), { 'Fix its ownership or permissions' })
      return
    end
    vim.uv.fs_close(fd)
    vim.uv.fs_unlink(probe)
    if bit.band(stat.mode, 63) ~= 0 then -- 0o077: group/other bits
      health.warn(
        ('%s (%s) is writable but readable by others (mode %o)'):format(dir, source, bit.band(stat.mode, 511)),
        { 'chmod 700 ' .. dir }
      )
    else
      health.ok(('%s (%s) is writable and private'):format(dir, source))
    end
    return
  end
  -- Not created yet: the server creates it (0700) where the nearest existing parent is writable.
  local parent = vim.fs.dirname(dir)
  while parent and not vim.uv.fs_stat(parent) do
    local up = vim.fs.dirname(parent)
    if up == parent then
      break
    end
    parent = up
  end
  if parent and vim.uv.fs_access(parent, 'W') then
    health.ok(('%s (%s) will be created on first checkpoint (%s is writable)'):format(dir, source, parent))
  else
    health.error(('%s (%s) cannot be created: %s is not writable'):format(dir, source, tostring(parent)))
  end
end

function M.check()
  local config = require('tether.config')
  local cfg = config.get()

  health.start('tether: Neovim and configuration')
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim 0.11 or newer is required')
  end
  if #config.problems == 0 then
    health.ok('configuration is valid')
  else
    for _, p in ipairs(config.problems) do
      health.warn('configuration: ' .. p)
    end
  end
  local doc = require('tether.docs').doc_dir()
  if vim.uv.fs_stat(vim.fs.joinpath(doc, 'tags')) then
    health.ok('help tags present in ' .. doc)
  else
    health.warn(('no help tags in %s: :help tether finds nothing'):format(doc), { ':helptags ' .. doc })
  end
  health.info('server command: ' .. table.concat(cfg.cmd, ' '))

  health.start('tether: server')
  local exe = cfg.cmd[1]
  local path = vim.fn.exepath(exe)
  if path == '' then
    health.error(('`%s` not found or not executable'):format(exe), {
      'pip install tether (or the project README command) into a Python on your PATH',
      "or set cmd, e.g. require('tether').setup({ cmd = { '/path/to/venv/bin/tether', 'lsp' } })",
    })
  else
    health.ok(('found %s'):format(path))
    local out, err = run(version_argv(cfg.cmd))
    if out then
      health.ok('version: ' .. out)
    else
      health.error(('`%s` failed: %s'):format(table.concat(version_argv(cfg.cmd), ' '), err or '?'))
    end
  end
  local clients = vim.lsp.get_clients({ name = 'tether' })
  if #clients == 0 then
    health.info('no tether client running (it starts when you open a file in a workspace)')
  end
  for _, c in ipairs(clients) do
    health.ok(('client %d running for %s'):format(c.id, tostring(c.root_dir)))
  end

  health.start('tether: tmux')
  local tmux = vim.fn.exepath('tmux')
  if tmux == '' then
    health.warn('tmux not found: terminals will not be snapshotted or reattached', { 'apt-get install tmux' })
  else
    local out, err = run({ tmux, '-V' })
    if not out then
      health.error(('tmux -V failed: %s'):format(err or '?'))
    else
      local major, minor = out:match('(%d+)%.(%d+)')
      if major and (tonumber(major) > 3 or tonumber(major) == 3 and tonumber(minor) >= 0) then
        health.ok(('%s (%s)'):format(out, tmux))
      else
        health.warn(('%s is old; tmux 3.0 or newer is supported'):format(out))
      end
    end
  end

  check_state_dir(cfg)
end

return M
