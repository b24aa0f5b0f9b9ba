-- Defines :CircleCircles, :CircleTopics, :CircleStatus and :CircleStop. The bridge itself
-- starts only on the first command (or API call).
if vim.g.loaded_circle_bridge then
  return
end
vim.g.loaded_circle_bridge = true

require('circle_bridge').create_commands()
