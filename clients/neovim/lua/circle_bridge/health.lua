--- `:checkhealth circle_bridge`: can this Neovim run the bridge, is it configured, and does the
--- bridge reach CircleService? Prints setting names only, never their values.
local M = {}

-- Neovim 0.7 has require('health') with report_*; 0.8 adds vim.health; 0.9 names them
-- start/ok/...; 0.10 deprecates report_*.
local health = vim.health or require('health')
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local info = health.info or health.report_info
local warn = health.warn or health.report_warn
local report_error = health.error or health.report_error

local COMMAND_TIMEOUT_MS = 10000

-- Run argv with the plugin's env over Neovim's; stdout and exit code, or nil and why not.
local function run(argv, env)
  local lines = {}
  local opts = {
    stdout_buffered = true,
    on_stdout = function(_, data)
      lines = data
    end,
  }
  if env and next(env) ~= nil then
    opts.env = env
  end
  local started, job = pcall(vim.fn.jobstart, argv, opts)
  if not started or job <= 0 then
    return nil, 'could not start ' .. table.concat(argv, ' ')
  end
  local code = vim.fn.jobwait({ job }, COMMAND_TIMEOUT_MS)[1]
  if code == -1 then
    vim.fn.jobstop(job)
    return nil, string.format('%s did not finish within %d ms', table.concat(argv, ' '), COMMAND_TIMEOUT_MS)
  end
  -- on_stdout runs from the event loop; jobwait has processed it by now, but be sure.
  vim.wait(1000, function()
    return #lines > 0
  end, 10)
  local text = vim.tbl_filter(function(line)
    return line ~= ''
  end, lines)
  return { code = code, lines = text }
end

local function check_neovim()
  start('Neovim')
  if vim.fn.has('nvim-0.7') == 1 then
    local v = vim.version()
    ok(string.format('Neovim %d.%d.%d (0.7 or newer is needed)', v.major, v.minor, v.patch))
  else
    report_error('Neovim 0.7 or newer is needed', { 'Install a newer Neovim (clients/neovim/install-nvim.sh)' })
  end
end

-- Returns the executable's path when it can be run.
local function check_executable(cmd, env)
  start('circle-bridge executable')
  local exe = cmd[1]
  local path = vim.fn.exepath(exe)
  if path == '' then
    report_error(string.format('%s is not executable or not on PATH (setup cmd = %s)', exe, vim.inspect(cmd)), {
      'Install circle-bridge (pip install /path/to/circle-bridge), or put its .venv/bin on PATH',
      "or give its full path: require('circle_bridge').setup({ cmd = { '/path/to/circle-bridge', 'serve', '--stdio' } })",
    })
    return nil
  end
  local result, why = run({ path, '--version' }, env)
  if result == nil or result.code ~= 0 then
    report_error(string.format('%s --version failed: %s', path, why or ('exit code ' .. result.code)), {
      'Run it in a terminal to see why; a broken virtualenv is the usual cause',
    })
    return nil
  end
  ok(string.format('%s (%s)', result.lines[#result.lines] or '?', path))
  return path
end

local function check_configuration(cmd, path, env)
  start('Configuration')
  if vim.tbl_contains(cmd, '--emulator') then
    info('cmd runs the bridge on its embedded emulator (--emulator): no Circle credentials are needed')
    return
  end
  local result, why = run({ path, 'doctor' }, env)
  if result == nil then
    warn('circle-bridge doctor did not run: ' .. why)
    return
  end
  -- doctor's last line is its verdict; it names missing settings, never their values.
  local verdict = result.lines[#result.lines] or ''
  if result.code == 0 then
    ok('circle-bridge doctor: ' .. verdict)
  else
    warn('circle-bridge doctor: ' .. verdict, {
      'Set the CIRCLE_* settings in the environment Neovim starts from, in setup({ env = { ... } }),'
        .. ' or in the config file; see :help circle_bridge-configuration',
      'Without them every circle/* call fails with BadConfiguration (-33007)',
    })
  end
end

local function check_bridge(circle_bridge, protocol)
  start('Bridge')
  local running_before = circle_bridge.is_running()
  local done, err, result = false, nil, nil
  -- Starts the bridge if it is not running, as the first :Circle* command would.
  circle_bridge.is_service_running(function(e, r)
    done, err, result = true, e, r
  end)
  if not vim.wait(COMMAND_TIMEOUT_MS + 5000, function()
    return done
  end, 20) then
    report_error('no answer to circle/isServiceRunning within ' .. (COMMAND_TIMEOUT_MS + 5000) .. ' ms')
    return
  end
  if err then
    report_error(circle_bridge.format_error(err), {
      'See the bridge log in :lua print(vim.lsp.get_log_path())',
    })
    return
  end
  local server = circle_bridge.server_info() or {}
  local name = server.serverInfo and server.serverInfo.name or '?'
  local version = server.serverInfo and server.serverInfo.version or '?'
  ok(string.format('%s %s answers (%s)', name, version, running_before and 'already running' or 'started for this check'))
  local major = function(v)
    return tostring(v or ''):match('^(%d+)')
  end
  if major(server.protocolVersion) == major(protocol.protocol_version) then
    ok(string.format('protocol %s (this plugin speaks %s)', server.protocolVersion, protocol.protocol_version))
  else
    report_error(
      string.format('the bridge speaks protocol %s, this plugin %s', tostring(server.protocolVersion), protocol.protocol_version),
      { 'Update the plugin and the bridge from the same circle-bridge checkout' }
    )
  end
  if result.running then
    ok('CircleService is running at ' .. result.serviceUrl)
  else
    warn('CircleService is NOT running at ' .. result.serviceUrl, {
      'Install and start CircleService, or point CIRCLE_SERVICE_URL at it',
    })
  end
end

-- The shared daemon, for the transports that use one. Never shows daemon.json's authToken.
-- Returns false when no call can succeed (socket or tcp without a daemon).
local function check_daemon(circle_bridge, config)
  start('Daemon')
  local dir = config.runtime_dir or circle_bridge.runtime_dir()
  info(string.format("transport '%s', runtime dir %s", config.transport, dir))
  local state, why = circle_bridge.daemon_state(config.runtime_dir)
  if state == nil then
    if config.transport == 'connect' then
      info(why .. ': `circle-bridge connect` starts one on the first call')
      return true
    end
    report_error(why, {
      'Start one: circle-bridge serve --socket --tcp 0',
      "or let the plugin start one: setup({ transport = 'connect' })",
    })
    return false
  end
  local tcp = type(state.tcp) == 'string' and state.tcp or 'no TCP'
  local socket = type(state.socket) == 'string' and state.socket or 'no socket'
  ok(string.format('daemon pid %d, circle-bridge %s, on %s and %s', state.pid, tostring(state.version), socket, tcp))
  if config.transport == 'tcp' and tcp == 'no TCP' then
    report_error('the daemon does not listen on TCP', { 'Start it with --tcp 0, or use transport = "socket"' })
    return false
  end
  return true
end

function M.check()
  local circle_bridge = require('circle_bridge')
  local protocol = require('circle_bridge.protocol')
  local config = circle_bridge.config()
  check_neovim()
  if config.transport ~= 'socket' and config.transport ~= 'tcp' then
    local path = check_executable(config.cmd, config.env)
    if path == nil then
      return
    end
    check_configuration(config.cmd, path, config.env)
  end
  if config.transport ~= 'stdio' and not check_daemon(circle_bridge, config) then
    return
  end
  check_bridge(circle_bridge, protocol)
end

return M
