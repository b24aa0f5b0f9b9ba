-- List every circle with its number of topics. Run inside Neovim: :luafile examples/list_circles.lua
local circle_bridge = require('circle_bridge')

circle_bridge.setup({
  cmd = { vim.env.CIRCLE_BRIDGE_BIN or 'circle-bridge', 'serve', '--stdio' },
  -- env = { CIRCLE_SERVICE_URL = 'http://127.0.0.1:31415' }, -- overrides for the bridge
})

circle_bridge.enum_circles(function(err, result)
  if err then
    return circle_bridge.notify_error(err) -- "circle-bridge: <Name> (<code>): <message>"
  end
  for _, circle in ipairs(result.circles) do
    circle_bridge.enum_topics(circle.circleId, function(terr, topics)
      if terr then
        return circle_bridge.notify_error(terr)
      end
      local name = circle.circleName or circle.circleId
      vim.notify(string.format('%s: %d topics', name, #topics.topics), vim.log.levels.INFO)
    end)
  end
end)
