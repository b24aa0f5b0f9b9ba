-- One Neovim client through its attach-or-start transport (`circle-bridge connect`): writes "ok <circles>" or "error <text>" to
-- $RESULT_FILE and quits. Used by tests/e2e/test_daemon.py.
local circle_bridge = require('circle_bridge')

local function finish(line)
  local out = assert(io.open(vim.env.RESULT_FILE, 'w'))
  out:write(line)
  out:close()
  circle_bridge.stop(function()
    vim.schedule(function()
      vim.cmd('qall!')
    end)
  end)
end

vim.defer_fn(function()
  finish('error timeout')
end, 60000)

circle_bridge.setup({ cmd = { vim.env.CIRCLE_BRIDGE_BIN }, transport = 'connect' })
circle_bridge.enum_circles(function(err, result)
  if err then
    return finish('error ' .. circle_bridge.format_error(err))
  end
  finish('ok ' .. #result.circles)
end)
