-- Headless end-to-end test of the daemon transports: a real `circle-bridge serve --socket --tcp 0`
-- (and a daemon that `circle-bridge connect` starts) in a private runtime dir, against the
-- emulator test/run.sh started; and the server-notification handlers.

local h = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local WAIT_MS, out, check, eq, test, await, wait_for, http = h.WAIT_MS, h.out, h.check, h.eq, h.test, h.await, h.wait_for, h.http

local control_url = assert(os.getenv('EMULATOR_CONTROL_URL'), 'EMULATOR_CONTROL_URL is not set (use test/run.sh)')
local bridge_bin = assert(os.getenv('CIRCLE_BRIDGE_BIN'), 'CIRCLE_BRIDGE_BIN is not set (use test/run.sh)')

local function reset_emulator()
  eq(http('POST', control_url .. '/reset', '{}'), 200, 'emulator reset')
end

local function token_requests()
  local status, body = http('GET', control_url .. '/state')
  eq(status, 200, 'emulator state')
  return vim.json.decode(body).stats.tokenRequests
end

local cb_mod = require('circle_bridge')

-- A short private runtime dir under /tmp (a socket path must fit in 103 bytes).
local function private_runtime_dir()
  local dir = vim.fn.trim(vim.fn.system({ 'mktemp', '-d', '/tmp/cb-nvim-XXXXXX' }))
  check(vim.v.shell_error == 0 and dir ~= '', 'mktemp -d')
  return dir
end

-- `serve --socket --tcp 0` in `dir`; returns its job once it announced itself.
local function start_daemon(dir)
  local announced = nil
  local daemon = { exited = false }
  daemon.id = vim.fn.jobstart({ bridge_bin, 'serve', '--socket', '--tcp', '0' }, {
    env = { CIRCLE_BRIDGE_RUNTIME_DIR = dir },
    on_exit = function()
      daemon.exited = true
    end,
    on_stdout = function(_, lines)
      if announced == nil and lines[1] and lines[1] ~= '' then
        announced = vim.json.decode(lines[1])
      end
    end,
  })
  check(daemon.id > 0, 'jobstart serve')
  wait_for('the daemon to announce itself', function()
    return announced ~= nil
  end)
  return daemon, announced
end

local function stop_daemon_job(daemon)
  vim.fn.jobstop(daemon.id) -- SIGTERM: it drains and removes its socket and daemon.json
  wait_for('the daemon to exit', function()
    return daemon.exited
  end)
end

local function stop_client()
  await('stop', cb_mod.stop)
end

local function main()
  test('runtime_dir() resolves as the Python CLI does', function()
    local uid = vim.loop.getuid()
    eq(cb_mod.runtime_dir({ CIRCLE_BRIDGE_RUNTIME_DIR = '/x/own', XDG_RUNTIME_DIR = '/run/u' }, 'Linux'), '/x/own', 'own')
    eq(cb_mod.runtime_dir({ CIRCLE_BRIDGE_RUNTIME_DIR = '', XDG_RUNTIME_DIR = '/run/u' }, 'Linux'), '/run/u/circle-bridge', 'xdg')
    eq(cb_mod.runtime_dir({ TMPDIR = '/var/folders/T/' }, 'Darwin'), '/var/folders/T/circle-bridge', 'macOS')
    eq(cb_mod.runtime_dir({ TMPDIR = '/var/folders/T/' }, 'Linux'), '/tmp/circle-bridge-' .. uid, 'fallback')
    -- and the real one, against the Python resolver
    local python = vim.fn.fnamemodify(bridge_bin, ':h') .. '/python'
    local code = 'from circle_bridge._runtime_dir import runtime_dir; print(runtime_dir())'
    local env = { XDG_RUNTIME_DIR = '/run/user/42', CIRCLE_BRIDGE_RUNTIME_DIR = '' }
    local from_python = vim.fn.trim(vim.fn.system({ 'env', 'XDG_RUNTIME_DIR=/run/user/42', 'CIRCLE_BRIDGE_RUNTIME_DIR=', python, '-c', code }))
    eq(cb_mod.runtime_dir(env), from_python, 'Lua and Python agree')
  end)

  local dir = private_runtime_dir()
  local job, announced = start_daemon(dir)

  test('socket and tcp attach to one daemon and share its session', function()
    reset_emulator()
    local state = assert(cb_mod.daemon_state(dir))
    eq(state.socket, announced.socket, 'daemon.json socket')
    eq(state.tcp, announced.tcp, 'daemon.json tcp')
    for _, transport in ipairs({ 'socket', 'tcp' }) do
      cb_mod.setup({ transport = transport, runtime_dir = dir })
      local err, result = await('enum_circles over ' .. transport, cb_mod.enum_circles)
      check(err == nil, transport .. ': ' .. vim.inspect(err))
      check(#result.circles >= 1, 'circles over ' .. transport)
      eq(cb_mod.server_info().serverInfo.name, 'circle-bridge', 'serverInfo')
      stop_client()
    end
    eq(token_requests(), 1, 'token requests for both connections')
  end, function()
    cb_mod.setup({})
  end)

  test('a TCP client without the token is refused with -33010 and runs nothing', function()
    reset_emulator()
    local state = assert(cb_mod.daemon_state(dir))
    local host, port = state.tcp:match('^(.-):(%d+)$')
    local exited = false
    local rpc = require('circle_bridge.socket_rpc').connect({ host = host, port = tonumber(port) }, {
      notification = function() end,
      on_exit = function()
        exited = true
      end,
    })
    local err
    await('initialize without a token', function(cb)
      rpc.request('initialize', { clientInfo = { name = 'no-token' } }, function(e, r)
        err = e
        cb(e, r)
      end)
    end)
    eq(err and err.code, -33010, 'error code')
    wait_for('the daemon to close the connection', function()
      return exited
    end)
    eq(token_requests(), 0, 'token requests')
  end)

  test('handlers receive $/progress', function()
    local seen = {}
    cb_mod.setup({
      transport = 'socket',
      runtime_dir = dir,
      handlers = {
        ['$/progress'] = function(params)
          seen[#seen + 1] = params
        end,
      },
    })
    local err = await('createCircle', function(cb)
      cb_mod.request('circle/createCircle', { circleName = 'nvim progress', workDoneToken = 'nvim-1' }, cb)
    end)
    check(err == nil, vim.inspect(err))
    wait_for('progress end', function()
      return #seen >= 2 and seen[#seen].value.kind == 'end'
    end)
    eq(seen[1].token, 'nvim-1', 'token')
    eq(seen[1].value.kind, 'begin', 'first kind')
    stop_client()
  end, function()
    cb_mod.setup({})
  end)

  test(':checkhealth circle_bridge reports the daemon, never its token', function()
    cb_mod.setup({ transport = 'tcp', runtime_dir = dir })
    vim.cmd('silent checkhealth circle_bridge')
    local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    local buf = vim.api.nvim_get_current_buf()
    pcall(vim.cmd, 'tabclose')
    pcall(vim.api.nvim_buf_delete, buf, { force = true })
    local text = table.concat(lines, '\n')
    check(text:find('daemon pid ' .. announced.pid, 1, true), text)
    check(text:find(announced.tcp, 1, true), text)
    check(text:find('answers', 1, true), text) -- the check's own call went through TCP
    check(not text:find(cb_mod.daemon_state(dir).authToken, 1, true), 'the auth token is shown')
    check(not text:find('ERROR', 1, true), text)
    stop_client()
  end, function()
    cb_mod.setup({})
  end)

  test('setup() refuses a handler for a notification the bridge never sends', function()
    local ok, message = pcall(cb_mod.setup, { handlers = { ['circle/nope'] = function() end } })
    eq(ok, false, 'setup fails')
    check(tostring(message):find('circle/nope', 1, true), tostring(message))
    ok = pcall(cb_mod.setup, { transport = 'carrier-pigeon' })
    eq(ok, false, 'unknown transport')
  end, function()
    cb_mod.setup({})
  end)

  stop_daemon_job(job)

  test('socket and tcp report a runtime dir without a daemon', function()
    for _, transport in ipairs({ 'socket', 'tcp' }) do
      cb_mod.setup({ transport = transport, runtime_dir = dir })
      local original = vim.notify
      vim.notify = function() end
      local err = await('enum_circles', cb_mod.enum_circles)
      vim.notify = original
      check(err ~= nil and err.code == nil, transport .. ': ' .. vim.inspect(err))
      check(err.message:find(dir, 1, true), transport .. ': ' .. err.message)
    end
  end, function()
    cb_mod.setup({})
  end)
  vim.fn.delete(dir, 'rf')

  local cold = private_runtime_dir()
  test("transport 'connect' starts a daemon on a cold machine", function()
    reset_emulator()
    cb_mod.setup({ transport = 'connect', cmd = { bridge_bin }, runtime_dir = cold })
    local err, result = await('enum_circles', cb_mod.enum_circles)
    check(err == nil, vim.inspect(err))
    check(#result.circles >= 1, 'circles')
    stop_client()
    local state = cb_mod.daemon_state(cold)
    check(state ~= nil, 'connect recorded its daemon in daemon.json')
    check(vim.loop.kill(state.pid, 0) == 0, 'the daemon outlives the client')
    eq(token_requests(), 1, 'token requests')
  end, function()
    cb_mod.setup({})
    vim.fn.system({ 'env', 'CIRCLE_BRIDGE_RUNTIME_DIR=' .. cold, bridge_bin, 'stop' })
    vim.fn.delete(cold, 'rf')
  end)

  test('handlers receive circle/tokenNeeded', function()
    local needed = nil
    cb_mod.setup({
      cmd = { bridge_bin, 'serve', '--stdio' },
      env = { CIRCLE_TOKEN_SOURCE = 'client', CIRCLE_SECRET = '' },
      handlers = {
        ['circle/tokenNeeded'] = function(params)
          needed = params
        end,
      },
    })
    local err = await('enum_circles', cb_mod.enum_circles)
    eq(err and err.code, -33020, 'error code')
    wait_for('circle/tokenNeeded', function()
      return needed ~= nil
    end)
    eq(needed.reason, 'missing', 'reason')
    stop_client()
  end, function()
    cb_mod.setup({})
  end)
end

h.finish(main)
