--- `:help tether` right after install, whatever installed the plugin.
---
--- lazy.nvim (through the repository's lazy.lua `build`), vim-plug and packer generate help tags
--- themselves; a native package or a plain 'runtimepath' entry does not. When this plugin's
--- doc/tags is missing and its folder is writable, it is generated once (`:helptags`); a read-only
--- install is left alone and `:checkhealth tether` says how to fix it.
local M = {}

--- This plugin's doc/ folder (next to lua/tether/, wherever the plugin was put).
---@return string
function M.doc_dir()
  local src = debug.getinfo(1, 'S').source:sub(2)
  return vim.fs.joinpath(vim.fs.dirname(vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(src)))), 'doc')
end

---@return boolean tags_exist
function M.ensure_helptags()
  local dir = M.doc_dir()
  if vim.uv.fs_stat(vim.fs.joinpath(dir, 'tags')) then
    return true
  end
  if not vim.uv.fs_stat(vim.fs.joinpath(dir, 'tether.txt')) or not vim.uv.fs_access(dir, 'W') then
    return false
  end
  local ok = pcall(vim.cmd.helptags, vim.fn.fnameescape(dir))
  return ok and vim.uv.fs_stat(vim.fs.joinpath(dir, 'tags')) ~= nil
end

return M
