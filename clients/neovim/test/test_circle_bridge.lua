-- Headless end-to-end test: a real `circle-bridge serve --stdio` started by the plugin, talking
-- to a real `circle-bridge emulator` (started by test/run.sh, which exports the CIRCLE_* env).
-- Every wait is bounded; the last line is `neovim: N passed, M failed`.

local h = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local WAIT_MS, out, check, eq, test, await, wait_for = h.WAIT_MS, h.out, h.check, h.eq, h.test, h.await, h.wait_for

-- Capture vim.notify calls while `fn` runs.
local function with_notify_capture(fn)
  local seen = {}
  local original = vim.notify
  vim.notify = function(msg, level)
    seen[#seen + 1] = { msg = msg, level = level }
  end
  local ok, err = pcall(fn, seen)
  vim.notify = original
  if not ok then
    error(err, 0)
  end
  return seen
end

local function process_alive(pid)
  -- kill(pid, 0) fails once the process is gone and reaped.
  local ok = pcall(vim.loop.kill, pid, 0)
  return ok and vim.loop.kill(pid, 0) == 0
end

-- POST a JSON body to the emulator's control API; returns the status code.
local function http_post(url, body)
  return (h.http('POST', url, body))
end

local control_url = assert(os.getenv('EMULATOR_CONTROL_URL'), 'EMULATOR_CONTROL_URL is not set (use test/run.sh)')
local bridge_bin = assert(os.getenv('CIRCLE_BRIDGE_BIN'), 'CIRCLE_BRIDGE_BIN is not set (use test/run.sh)')
local service_url = assert(os.getenv('CIRCLE_SERVICE_URL'), 'CIRCLE_SERVICE_URL is not set (use test/run.sh)')
local bridge_cmd = { bridge_bin, 'serve', '--stdio' }

local cb_mod = require('circle_bridge')
local protocol = require('circle_bridge.protocol')
local circles = {}

local function main()
  test('plugin/circle_bridge.lua defines the commands', function()
    vim.cmd('runtime! plugin/circle_bridge.lua')
    for _, name in ipairs({ 'CircleCircles', 'CircleTopics', 'CircleStatus', 'CircleStop' }) do
      eq(vim.fn.exists(':' .. name), 2, ':' .. name .. ' exists')
    end
  end)

  test('a missing bridge binary fails the call with a readable error', function()
    cb_mod.setup({ cmd = { '/nonexistent/circle-bridge', 'serve', '--stdio' } })
    local err, result
    with_notify_capture(function()
      err, result = await('enum_circles', cb_mod.enum_circles)
    end)
    eq(result, nil, 'result')
    check(err and err.message:find('could not start', 1, true), 'error message: ' .. vim.inspect(err))
    eq(err.code, nil, 'client-side error has no JSON-RPC code')
    eq(cb_mod.is_running(), false, 'is_running')
  end)

  test('setup env reaches the bridge: a dead service URL gives ServiceNotRunning', function()
    local dead_url = 'http://127.0.0.1:9'
    cb_mod.setup({ cmd = bridge_cmd, env = { CIRCLE_SERVICE_URL = dead_url } })
    local err, status = await('is_service_running', cb_mod.is_service_running)
    eq(err, nil, 'is_service_running error')
    eq(status.running, false, 'running')
    eq(status.serviceUrl:gsub('/$', ''), dead_url, 'serviceUrl')
    local cerr = await('enum_circles', cb_mod.enum_circles)
    check(cerr ~= nil, 'enum_circles against a dead service must fail')
    eq(cerr.code, protocol.error_codes.ServiceNotRunning, 'code')
    eq(cerr.name, 'ServiceNotRunning', 'name')
    local _, exit = await('stop', cb_mod.stop)
    eq(exit and exit.code, 0, 'exit code')
  end, function()
    await('stop', cb_mod.stop) -- a no-op unless an assertion above failed
    cb_mod.setup({ cmd = bridge_cmd })
  end)

  test('lazy start: queued calls share one bridge and one handshake', function()
    cb_mod.setup({ cmd = bridge_cmd })
    eq(cb_mod.pid(), nil, 'no bridge before the first call')
    local a_done, b_done, a_err, b_err, a_res, b_res = false, false, nil, nil, nil, nil
    cb_mod.is_service_running(function(err, res)
      a_done, a_err, a_res = true, err, res
    end)
    local pid = cb_mod.pid()
    check(type(pid) == 'number' and pid > 0, 'a bridge process was spawned')
    eq(cb_mod.is_running(), false, 'still in the handshake')
    cb_mod.is_service_running(function(err, res)
      b_done, b_err, b_res = true, err, res
    end)
    wait_for('both replies', function()
      return a_done and b_done
    end)
    eq(a_err, nil, 'first error')
    eq(b_err, nil, 'second error')
    eq(a_res.running, true, 'first running')
    eq(b_res.running, true, 'second running')
    eq(a_res.serviceUrl:gsub('/$', ''), service_url:gsub('/$', ''), 'serviceUrl')
    eq(cb_mod.pid(), pid, 'same process')
    eq(cb_mod.is_running(), true, 'is_running after the handshake')
    local info = cb_mod.server_info()
    eq(info.serverInfo.name, 'circle-bridge', 'serverInfo.name')
    eq(info.protocolVersion, protocol.protocol_version, 'protocolVersion')
  end)

  test('enum_circles returns circles with ids and extra fields', function()
    local err, result = await('enum_circles', cb_mod.enum_circles)
    eq(err, nil, 'error')
    circles = result.circles
    check(#circles >= 1, 'at least one circle, got ' .. #circles)
    for i, circle in ipairs(circles) do
      check(type(circle.circleId) == 'string' and circle.circleId ~= '', 'circles[' .. i .. '].circleId')
    end
    check(type(circles[1].memberCount) == 'number', 'extra field memberCount kept: ' .. vim.inspect(circles[1]))
  end)

  test('enum_topics of the first circle returns topics with ids', function()
    local err, result = await('enum_topics', function(cb)
      cb_mod.enum_topics(circles[1].circleId, cb)
    end)
    eq(err, nil, 'error')
    check(#result.topics >= 1, 'at least one topic')
    for i, topic in ipairs(result.topics) do
      check(type(topic.topicId) == 'string' and topic.topicId ~= '', 'topics[' .. i .. '].topicId')
    end
  end)

  test('examples/list_circles.lua notifies one "name: N topics" line per circle', function()
    local seen = with_notify_capture(function(seen)
      vim.cmd('luafile examples/list_circles.lua')
      wait_for('one notification per circle', function()
        return #seen >= #circles
      end)
    end)
    eq(#seen, #circles, 'notifications')
    local expected = {}
    for _, circle in ipairs(circles) do
      expected[circle.circleName] = true
    end
    for _, n in ipairs(seen) do
      eq(n.level, vim.log.levels.INFO, 'level of ' .. n.msg)
      local name, count = n.msg:match('^(.*): (%d+) topics$')
      check(name and expected[name], 'unexpected notification: ' .. n.msg)
      check(tonumber(count) >= 1, 'topics counted: ' .. n.msg)
      expected[name] = nil
    end
  end)

  test(':CircleCircles fills a scratch buffer, one "name [id]" line per circle', function()
    vim.cmd('CircleCircles')
    wait_for('circles buffer', function()
      local buf = cb_mod.circles_buffer()
      return buf ~= nil and #vim.api.nvim_buf_get_lines(buf, 0, -1, false) == #circles
    end)
    local buf = cb_mod.circles_buffer()
    eq(vim.api.nvim_get_current_buf(), buf, 'the buffer is shown')
    eq(vim.api.nvim_buf_get_name(buf), 'circle-bridge://circles', 'buffer name')
    local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    for i, circle in ipairs(circles) do
      eq(lines[i], string.format('%s [%s]', circle.circleName, circle.circleId), 'line ' .. i)
    end
  end)

  test(':CircleTopics with no argument uses the circle under the cursor', function()
    check(#circles >= 2, 'needs two circles')
    local target = circles[2]
    local _, expected = await('enum_topics', function(cb)
      cb_mod.enum_topics(target.circleId, cb)
    end)
    vim.api.nvim_set_current_buf(cb_mod.circles_buffer())
    vim.api.nvim_win_set_cursor(0, { 2, 0 })
    vim.cmd('CircleTopics')
    local name = 'circle-bridge://topics/' .. target.circleId
    wait_for('topics buffer', function()
      return vim.api.nvim_buf_get_name(0) == name
    end)
    local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    eq(#lines, #expected.topics, 'one line per topic')
    for i, topic in ipairs(expected.topics) do
      check(lines[i]:find('[' .. topic.topicId .. ']', 1, true), 'line ' .. i .. ' has the topic id: ' .. lines[i])
    end
  end)

  test('enum_topics("no-such-circle") fails with CircleOperationFailed (-33004)', function()
    local err, result = await('enum_topics', function(cb)
      cb_mod.enum_topics('no-such-circle', cb)
    end)
    eq(result, nil, 'result')
    check(err ~= nil, 'an error')
    eq(err.code, -33004, 'code')
    eq(err.name, 'CircleOperationFailed', 'name')
    eq(type(err.data), 'table', 'data')
    eq(err.data.upstreamMessage, 'Circle not found', 'data.upstreamMessage')
    eq(cb_mod.format_error(err), 'circle-bridge: CircleOperationFailed (-33004): Circle not found', 'display')
  end)

  test(':CircleTopics no-such-circle notifies the error at ERROR level', function()
    local seen = with_notify_capture(function(seen)
      vim.cmd('CircleTopics no-such-circle')
      wait_for('notification', function()
        return #seen > 0
      end)
    end)
    eq(#seen, 1, 'one notification')
    eq(seen[1].msg, 'circle-bridge: CircleOperationFailed (-33004): Circle not found', 'message')
    eq(seen[1].level, vim.log.levels.ERROR, 'level')
  end)

  test('a request slower than request_timeout_ms is cancelled; the bridge keeps serving', function()
    local pid = cb_mod.pid()
    cb_mod.setup({ cmd = bridge_cmd, request_timeout_ms = 300 })
    eq(http_post(control_url .. '/faults', '{"serviceDelay": 1}'), 200, 'set serviceDelay')
    local terr, tres = await('enum_circles', cb_mod.enum_circles)
    eq(tres, nil, 'result')
    check(terr ~= nil, 'a timeout error')
    eq(terr.name, 'RequestCancelled', 'name')
    eq(terr.code, protocol.error_codes.RequestCancelled, 'code')
    check(terr.message:find('timed out after 300 ms', 1, true), 'message: ' .. terr.message)
    cb_mod.setup({ cmd = bridge_cmd })
    eq(http_post(control_url .. '/reset', '{}'), 200, 'reset faults')
    local rerr, result = await('enum_circles', cb_mod.enum_circles)
    eq(rerr, nil, 'error after reset')
    eq(#result.circles, #circles, 'circles after reset')
    eq(cb_mod.pid(), pid, 'same bridge process')
  end, function()
    cb_mod.setup({ cmd = bridge_cmd })
    eq(http_post(control_url .. '/reset', '{}'), 200, 'reset faults')
  end)

  test('stop() shuts the bridge down with exit code 0', function()
    local pid = cb_mod.pid()
    check(pid and process_alive(pid), 'bridge alive before stop')
    local err, exit = await('stop', cb_mod.stop)
    eq(err, nil, 'error')
    eq(exit.code, 0, 'exit code')
    eq(exit.signal, 0, 'signal')
    eq(cb_mod.is_running(), false, 'is_running')
    eq(cb_mod.pid(), nil, 'pid')
    check(not process_alive(pid), 'process ' .. pid .. ' is gone')
  end)

  test('a call after stop() starts a fresh bridge', function()
    local err, result = await('enum_circles', cb_mod.enum_circles)
    eq(err, nil, 'error')
    eq(#result.circles, #circles, 'same circles')
    local _, exit = await('stop', cb_mod.stop)
    eq(exit.code, 0, 'exit code')
  end)

  test('stop() during the handshake lets the calls queued before it finish, then exits 0', function()
    local c_done, c_err, c_res, s_done, s_exit = false, nil, nil, false, nil
    cb_mod.enum_circles(function(err, res)
      c_done, c_err, c_res = true, err, res
    end)
    eq(cb_mod.is_running(), false, 'still in the handshake')
    cb_mod.stop(function(_, exit)
      s_done, s_exit = true, exit
    end)
    local l_err = await('call after stop()', cb_mod.enum_circles)
    check(l_err and l_err.message:find('shutting down', 1, true), 'refused: ' .. vim.inspect(l_err))
    wait_for('both callbacks', function()
      return c_done and s_done
    end)
    eq(c_err, nil, 'queued call error')
    eq(#c_res.circles, #circles, 'queued call result')
    eq(s_exit and s_exit.code, 0, 'exit code')
  end)

  test('a bridge killed mid-request fails the pending call and warns', function()
    eq(http_post(control_url .. '/faults', '{"serviceDelay": 2}'), 200, 'set serviceDelay')
    local seen = with_notify_capture(function()
      local done, c_err = false, nil
      cb_mod.enum_circles(function(e)
        done, c_err = true, e
      end)
      wait_for('handshake', cb_mod.is_running) -- the call is on the wire once this is true
      vim.loop.kill(cb_mod.pid(), 'sigkill')
      wait_for('callback', function()
        return done
      end)
      check(c_err ~= nil, 'an error')
      eq(c_err.code, nil, 'client-side error')
      check(c_err.message:find('exited (code 0, signal 9)', 1, true), 'message: ' .. c_err.message)
      eq(cb_mod.is_running(), false, 'is_running')
    end)
    eq(#seen, 1, 'one notification: ' .. vim.inspect(seen))
    eq(seen[1].level, vim.log.levels.WARN, 'level')
    check(seen[1].msg:find('exited unexpectedly', 1, true), 'message: ' .. seen[1].msg)
  end, function()
    eq(http_post(control_url .. '/reset', '{}'), 200, 'reset faults')
  end)
end


-- The text of `:checkhealth circle_bridge`, one string per line; closes its tab afterwards.
local function checkhealth()
  vim.cmd('silent checkhealth circle_bridge')
  local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  local buf = vim.api.nvim_get_current_buf()
  pcall(vim.cmd, 'tabclose')
  pcall(vim.api.nvim_buf_delete, buf, { force = true })
  return lines
end

-- The report line holding `text`, checked to carry `level` (OK, WARNING or ERROR; Neovim 0.7
-- writes "- OK: text", 0.10 "- ✅ OK text").
local function reported(lines, level, text)
  for _, line in ipairs(lines) do
    if line:find(text, 1, true) then
      check(line:find(level, 1, true), string.format('%q is reported, but not as %s', line, level))
      return line
    end
  end
  error(string.format('no report line holds %q in:\n%s', text, table.concat(lines, '\n')), 2)
end

local function no_level(lines, level)
  for _, line in ipairs(lines) do
    check(not line:find('%- ' .. level) and not line:find(' ' .. level .. ':', 1, true), 'unexpected ' .. line)
  end
end

local function docs_and_health()
  test('doc/circle_bridge.txt: :helptags accepts it and every tag and |link| resolves', function()
    local dir = vim.fn.tempname()
    vim.fn.mkdir(dir .. '/doc', 'p')
    local text = vim.fn.readfile('doc/circle_bridge.txt')
    vim.fn.writefile(text, dir .. '/doc/circle_bridge.txt')
    vim.cmd('helptags ' .. vim.fn.fnameescape(dir .. '/doc')) -- raises on a duplicate tag
    vim.opt.rtp:prepend(dir)
    local tags, links = {}, {}
    for _, line in ipairs(text) do
      for tag in line:gmatch('%*([^%s*|]+)%*') do
        tags[#tags + 1] = tag
      end
      for link in line:gmatch('|([^%s|]+)|') do
        links[#links + 1] = link
      end
    end
    check(#tags >= 20, 'tags found: ' .. #tags)
    for _, tag in ipairs(tags) do
      vim.cmd('help ' .. vim.fn.escape(tag, ' '))
      check(vim.api.nvim_buf_get_name(0):find('circle_bridge.txt$'), ':help ' .. tag .. ' opened ' .. vim.api.nvim_buf_get_name(0))
      check(vim.api.nvim_get_current_line():find('*' .. tag .. '*', 1, true), ':help ' .. tag .. ' landed elsewhere')
    end
    for _, link in ipairs(links) do
      local found, why = pcall(vim.cmd, 'help ' .. vim.fn.escape(link, ' '))
      check(found, '|' .. link .. '| does not resolve: ' .. tostring(why))
    end
    -- every command the plugin defines is documented
    for _, name in ipairs({ 'CircleCircles', 'CircleTopics', 'CircleStatus', 'CircleStop' }) do
      check(vim.tbl_contains(tags, ':' .. name), ':' .. name .. ' has no help tag')
    end
    for _, fn in ipairs({ 'setup', 'enum_circles', 'enum_topics', 'is_service_running', 'request', 'stop' }) do
      check(vim.tbl_contains(tags, 'circle_bridge.' .. fn .. '()'), fn .. '() has no help tag')
    end
    vim.cmd('helpclose')
  end)

  test(':checkhealth circle_bridge reports the executable, the settings and the bridge as OK', function()
    cb_mod.setup({ cmd = bridge_cmd })
    local lines = checkhealth()
    reported(lines, 'OK', 'Neovim 0.')
    reported(lines, 'OK', '(' .. bridge_bin .. ')')
    reported(lines, 'OK', 'circle-bridge doctor: credentials')
    reported(lines, 'OK', 'answers (started for this check)')
    reported(lines, 'OK', 'protocol ' .. protocol.protocol_version)
    reported(lines, 'OK', 'CircleService is running at ' .. service_url)
    no_level(lines, 'ERROR')
    no_level(lines, 'WARNING')
    eq(cb_mod.is_running(), true, 'the bridge the check started keeps running')
    reported(checkhealth(), 'OK', 'answers (already running)')
  end, function()
    await('stop', cb_mod.stop)
  end)

  test(':checkhealth names missing settings, never a value, and a dead service', function()
    local secret = assert(os.getenv('CIRCLE_SECRET'))
    local app_key = assert(os.getenv('CIRCLE_APP_KEY'))
    cb_mod.setup({ cmd = bridge_cmd, env = { CIRCLE_SECRET = '', CIRCLE_SERVICE_URL = 'http://127.0.0.1:9' } })
    local lines = checkhealth()
    local verdict = reported(lines, 'WARNING', 'circle-bridge doctor: credentials')
    check(verdict:find('CIRCLE_SECRET', 1, true), 'the missing setting is named: ' .. verdict)
    reported(lines, 'WARNING', 'CircleService is NOT running at http://127.0.0.1:9')
    local all = table.concat(lines, '\n')
    check(not all:find(secret, 1, true) and not all:find(app_key, 1, true), 'a secret leaked into :checkhealth')
  end, function()
    await('stop', cb_mod.stop)
    cb_mod.setup({ cmd = bridge_cmd })
  end)

  test(':checkhealth reports a missing executable as an ERROR with advice', function()
    cb_mod.setup({ cmd = { '/nonexistent/circle-bridge', 'serve', '--stdio' } })
    local lines = checkhealth()
    reported(lines, 'ERROR', '/nonexistent/circle-bridge is not executable')
    check(table.concat(lines, '\n'):find('give its full path', 1, true), 'advice is shown')
    eq(cb_mod.is_running(), false, 'no bridge was started')
  end, function()
    cb_mod.setup({ cmd = bridge_cmd })
  end)

  test(':checkhealth skips the settings for a cmd that uses --emulator', function()
    cb_mod.setup({ cmd = { bridge_bin, 'serve', '--stdio', '--emulator' }, env = { CIRCLE_SECRET = '' } })
    local lines = checkhealth()
    reported(lines, 'OK', 'CircleService is running at http://127.0.0.1:')
    no_level(lines, 'WARNING')
    check(table.concat(lines, '\n'):find('no Circle credentials are needed', 1, true), 'the emulator is named')
  end, function()
    await('stop', cb_mod.stop)
    cb_mod.setup({ cmd = bridge_cmd })
  end)
end

h.finish(function()
  main()
  docs_and_health()
end, function()
  if cb_mod.pid() then
    await('final stop', cb_mod.stop)
  end
end)
