--- circle_bridge: talk to circle-bridge from Neovim (0.7+): a `circle-bridge serve --stdio`
--- process of its own, or this user's shared daemon (`transport` in setup()).
---
--- One connection per Neovim, opened on the first call and shared by every call after it. Every async function takes `cb(err, result)`: `err` is nil on success, otherwise
--- `{ code, name, message, data }` where `code`/`message`/`data` are the JSON-RPC error and
--- `name` is its catalogue name from `protocol.lua` (nil for errors raised on this side, e.g.
--- the bridge could not be started).
local protocol = require('circle_bridge.protocol')

local M = {}

M.version = '0.1.0'
M.protocol = protocol

local methods = protocol.methods
local uv = vim.loop

local defaults = {
  -- argv of the bridge; the first element is looked up on PATH.
  cmd = { 'circle-bridge', 'serve', '--stdio' },
  -- extra environment (e.g. CIRCLE_* settings), merged over Neovim's own environment.
  env = nil,
  -- working directory of the bridge process.
  cwd = nil,
  -- a request without a reply after this long is cancelled ($/cancelRequest) and fails.
  request_timeout_ms = 30000,
  -- after `exit`, how long to wait before sending SIGTERM.
  exit_timeout_ms = 3000,
  -- how to reach the bridge: 'stdio' runs `cmd`; 'connect' runs `{ cmd[1], 'connect' }`, which
  -- attaches to this user's daemon or starts one; 'socket' and 'tcp' attach to a running daemon
  -- (address, and for TCP the auth token, from daemon.json in `runtime_dir`).
  transport = 'stdio',
  -- where daemon.json is; nil: M.runtime_dir(), resolved as the Python CLI does.
  runtime_dir = nil,
  -- server notifications by method: { ['$/progress'] = fun(params), ['circle/tokenNeeded'] = fun(params) }
  handlers = nil,
}

local transports = { stdio = true, connect = true, socket = true, tcp = true }

local config = vim.deepcopy(defaults)

-- The current connection; nil when no bridge runs. Each start makes a new table so a late
-- exit of an old process cannot touch the state of a newer one.
---@type table|nil
local conn = nil

local last_circles = {}

---@param message string
---@param data table|nil
local function client_error(message, data)
  return { code = nil, name = nil, message = message, data = data }
end

--- Copy a JSON-RPC error object and add its catalogue name.
local function rpc_error(err)
  local data = err.data
  if data == vim.NIL then
    data = nil
  end
  return {
    code = err.code,
    name = protocol.error_names[err.code],
    message = err.message,
    data = data,
  }
end

--- The one-line text shown to the user for an error, e.g.
--- `circle-bridge: CircleOperationFailed (-33004): Circle not found`.
---@param err table an error as passed to callbacks
---@return string
function M.format_error(err)
  local detail = err.message or 'unknown error'
  if type(err.data) == 'table' and type(err.data.upstreamMessage) == 'string' then
    detail = err.data.upstreamMessage
  end
  if err.code == nil then
    return 'circle-bridge: ' .. detail
  end
  return string.format('circle-bridge: %s (%d): %s', err.name or 'UnknownError', err.code, detail)
end

function M.notify_error(err)
  vim.notify(M.format_error(err), vim.log.levels.ERROR)
end

--- Configure the plugin. Takes effect the next time the bridge starts.
---@param opts table|nil { cmd = string[], env = table<string,string>, cwd = string,
---                         request_timeout_ms = integer, exit_timeout_ms = integer }
function M.setup(opts)
  opts = opts or {}
  vim.validate({
    cmd = { opts.cmd, 'table', true },
    env = { opts.env, 'table', true },
    cwd = { opts.cwd, 'string', true },
    request_timeout_ms = { opts.request_timeout_ms, 'number', true },
    exit_timeout_ms = { opts.exit_timeout_ms, 'number', true },
    transport = { opts.transport, 'string', true },
    runtime_dir = { opts.runtime_dir, 'string', true },
    handlers = { opts.handlers, 'table', true },
  })
  if opts.transport and not transports[opts.transport] then
    error("circle_bridge.setup: transport must be 'stdio', 'connect', 'socket' or 'tcp'")
  end
  for method, handler in pairs(opts.handlers or {}) do
    if not protocol.server_notifications[method] then
      error('circle_bridge.setup: the bridge sends no notification ' .. tostring(method))
    end
    vim.validate({ [method] = { handler, 'function' } })
  end
  if opts.cmd and type(opts.cmd[1]) ~= 'string' then
    error('circle_bridge.setup: cmd must be a list of strings, e.g. { "circle-bridge", "serve", "--stdio" }')
  end
  -- Shallow on purpose: a deep merge would splice a shorter `cmd` list into the default one.
  config = vim.tbl_extend('force', vim.deepcopy(defaults), opts)
  M.create_commands()
end

--- The effective options (defaults merged with the last setup()), as a copy.
---@return table { cmd, env, cwd, request_timeout_ms, exit_timeout_ms }
function M.config()
  return vim.deepcopy(config)
end

---@return boolean true when a bridge process is up and past the handshake
function M.is_running()
  return conn ~= nil and conn.status == 'running'
end

--- `initialize` result of the running bridge (serverInfo, capabilities, protocolVersion), or nil.
function M.server_info()
  return conn and conn.server_info
end

--- PID of the bridge process, or nil (also nil on Neovim 0.10+, whose RPC client hides it).
function M.pid()
  return conn and conn.rpc and conn.rpc.pid
end

-- Send one request on `c` now, with a timeout that cancels it on the server.
local function send(c, method, params, cb)
  local done = false
  local timer = uv.new_timer()
  local token = {}
  local function finish(err, result)
    if done then
      return
    end
    done = true
    c.pending[token] = nil
    if not timer:is_closing() then
      timer:stop()
      timer:close()
    end
    if next(c.pending) == nil and #c.idle_waiters > 0 then
      local waiters = c.idle_waiters
      c.idle_waiters = {}
      for _, fn in ipairs(waiters) do
        fn()
      end
    end
    cb(err, result) -- last: an error in user code must not skip the bookkeeping above
  end
  c.pending[token] = finish
  local ok, id = c.rpc.request(method, params or vim.empty_dict(), function(err, result)
    if err then
      finish(rpc_error(err), nil)
    else
      finish(nil, result)
    end
  end)
  if not ok then
    vim.schedule(function()
      finish(client_error('the bridge is not running (' .. method .. ' not sent)'), nil)
    end)
    return
  end
  timer:start(
    config.request_timeout_ms,
    0,
    vim.schedule_wrap(function()
      if done then
        return
      end
      c.rpc.notify(methods.cancelRequest, { id = id })
      local code = protocol.error_codes.RequestCancelled
      finish({
        code = code,
        name = protocol.error_names[code],
        message = string.format('%s timed out after %d ms', method, config.request_timeout_ms),
        data = { timeoutMs = config.request_timeout_ms },
      }, nil)
    end)
  )
end

local function on_exit(c, code, signal, why)
  c.status = 'exited'
  c.exit = { code = code, signal = signal }
  if conn == c then
    conn = nil
  end
  local reason = client_error(why or string.format('circle-bridge exited (code %d, signal %d)', code, signal))
  c.idle_waiters = {}
  local pending = vim.tbl_values(c.pending)
  for _, finish in ipairs(pending) do
    finish(reason, nil)
  end
  local ready = c.on_ready
  c.on_ready = {}
  for _, fn in ipairs(ready) do
    fn(reason)
  end
  if not c.stop_requested then
    vim.notify(
      'circle-bridge: '
        .. (why or string.format('the bridge exited unexpectedly (code %d, signal %d)', code, signal)),
      vim.log.levels.WARN
    )
  end
  for _, waiter in ipairs(c.exit_waiters) do
    waiter(nil, c.exit)
  end
end

-- Send `exit`; SIGTERM if the process is still alive after `exit_timeout_ms`.
local function terminate(c)
  c.rpc.notify(methods.exit)
  vim.defer_fn(function()
    if c.status == 'exited' then
      return
    end
    if c.rpc.terminate then -- Neovim 0.10+
      c.rpc.terminate()
    elseif c.rpc.handle and not c.rpc.handle:is_closing() then
      c.rpc.handle:kill('sigterm')
    end
  end, config.exit_timeout_ms)
end

-- vim.lsp.rpc.start is (cmd, cmd_args, dispatchers, extra_spawn_params) up to Neovim 0.9 and
-- (cmd_list, dispatchers, extra_spawn_params) since 0.10; tell them apart by arity.
-- Returns the RPC client, or nil and a reason.
local function spawn(cmd, dispatchers, extra_spawn_params)
  local rpc_start = require('vim.lsp.rpc').start
  local nparams = debug.getinfo(rpc_start, 'u').nparams
  local list_form
  if nparams then
    list_form = nparams == 3
  else
    list_form = vim.fn.has('nvim-0.10') == 1
  end
  local ok, client
  if list_form then
    ok, client = pcall(rpc_start, cmd, dispatchers, extra_spawn_params)
  else
    ok, client = pcall(rpc_start, cmd[1], vim.list_slice(cmd, 2), dispatchers, extra_spawn_params)
  end
  if not ok then
    return nil, tostring(client)
  end
  if client == nil then -- 0.7-0.9 return nil (after a vim.notify) when the spawn fails
    return nil, 'spawn failed'
  end
  return client
end

--- This user's circle-bridge runtime dir, resolved as the Python CLI resolves it:
--- $CIRCLE_BRIDGE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/circle-bridge, else $TMPDIR/circle-bridge on
--- macOS, else /tmp/circle-bridge-<uid>. Empty variables count as unset.
---@param env table|nil variables to read (default: Neovim's environment)
---@param sysname string|nil the OS name as uv.os_uname() gives it (default: this machine's)
---@return string
function M.runtime_dir(env, sysname)
  local function get(name)
    local value
    if env then
      value = env[name]
    else
      value = vim.env[name]
    end
    if value == nil or value == '' then
      return nil
    end
    return value
  end
  sysname = sysname or uv.os_uname().sysname
  if get('CIRCLE_BRIDGE_RUNTIME_DIR') then
    return get('CIRCLE_BRIDGE_RUNTIME_DIR')
  end
  if get('XDG_RUNTIME_DIR') then
    return get('XDG_RUNTIME_DIR') .. '/circle-bridge'
  end
  if sysname == 'Darwin' and get('TMPDIR') then
    return (get('TMPDIR'):gsub('/+$', '')) .. '/circle-bridge'
  end
  return '/tmp/circle-bridge-' .. uv.getuid()
end

--- The running daemon's daemon.json (`pid`, `socket`, `tcp`, `authToken`, `identity`, ...), or
--- nil and a reason. `authToken` is a secret: never show or log it.
---@param dir string|nil default: setup's runtime_dir, else M.runtime_dir()
-- setup's runtime_dir, else the one its `env` (over Neovim's environment) resolves to.
local function configured_runtime_dir()
  if config.runtime_dir then
    return config.runtime_dir
  end
  return M.runtime_dir(config.env and vim.tbl_extend('force', vim.fn.environ(), config.env) or nil)
end

function M.daemon_state(dir)
  dir = dir or configured_runtime_dir()
  local path = dir .. '/daemon.json'
  local file = io.open(path, 'r')
  if not file then
    return nil, 'no daemon is recorded in ' .. dir
  end
  local text = file:read('*a')
  file:close()
  local ok, state = pcall(vim.json.decode, text)
  if not ok or type(state) ~= 'table' or type(state.pid) ~= 'number' or type(state.authToken) ~= 'string' then
    return nil, path .. ' is not a daemon state file'
  end
  return state
end

-- The RPC client for config.transport, and what initialize sends beyond clientInfo; or nil and a
-- reason.
local function open_transport(dispatchers)
  local transport = config.transport
  if transport == 'stdio' or transport == 'connect' then
    local cmd = config.cmd
    local env = config.env
    if transport == 'connect' then
      cmd = { cmd[1], 'connect' }
      if config.runtime_dir then
        env = vim.tbl_extend('force', env or {}, { CIRCLE_BRIDGE_RUNTIME_DIR = config.runtime_dir })
      end
    end
    local rpc, reason = spawn(cmd, dispatchers, { cwd = config.cwd, env = env })
    if rpc == nil then
      return nil, string.format('could not start %s: %s', vim.inspect(cmd), reason)
    end
    return rpc, { processId = vim.fn.getpid() }
  end
  local state, reason = M.daemon_state()
  local address, extra
  if transport == 'socket' then
    local dir = configured_runtime_dir()
    address = { path = (state and state.socket ~= vim.NIL and state.socket) or (dir .. '/bridge.sock') }
    extra = {} -- no processId: the daemon must not stop with one client
  else
    if state == nil then
      return nil, reason
    end
    if type(state.tcp) ~= 'string' then
      return nil, 'the daemon does not listen on TCP (start it with `circle-bridge serve --socket --tcp 0`)'
    end
    local host, port = state.tcp:match('^%[?(.-)%]?:(%d+)$')
    address = { host = host, port = tonumber(port) }
    extra = { initializationOptions = { authToken = state.authToken } }
  end
  local socket_dispatchers = {
    notification = dispatchers.notification,
    on_exit = function(code, signal, why)
      on_exit(dispatchers.connection, code, signal, why)
    end,
  }
  return require('circle_bridge.socket_rpc').connect(address, socket_dispatchers), extra
end

local function start()
  local c = { status = 'starting', pending = {}, on_ready = {}, exit_waiters = {}, idle_waiters = {} }
  local handlers = config.handlers or {}
  local rpc, extra = open_transport({
    connection = c,
    -- on_exit runs in a libuv callback (not schedule_wrapped in 0.7): no API calls there.
    on_exit = function(code, signal)
      vim.schedule(function()
        on_exit(c, code, signal)
      end)
    end,
    on_error = function(kind, err)
      local rpc_mod = require('vim.lsp.rpc')
      vim.notify(
        string.format('circle-bridge: RPC client error %s: %s', rpc_mod.client_errors[kind] or kind, vim.inspect(err)),
        vim.log.levels.WARN
      )
    end,
    notification = function(method, params)
      local handler = handlers[method]
      if handler then
        vim.schedule(function()
          handler(params)
        end)
      end
    end,
  })
  if rpc == nil then
    return nil, client_error(extra)
  end
  c.rpc = rpc
  conn = c

  local params = vim.tbl_extend('force', {
    clientInfo = { name = 'circle_bridge.nvim', version = M.version },
  }, extra)
  send(c, methods.initialize, params, function(err, result)
    if err then
      -- No handshake, no use for the process: end it and fail everything queued on it.
      c.stop_requested = true
      if conn == c then
        conn = nil
      end
      c.status = 'failed'
      terminate(c)
      local ready = c.on_ready
      c.on_ready = {}
      for _, fn in ipairs(ready) do
        fn(err)
      end
      return
    end
    c.server_info = result
    rpc.notify(methods.initialized, vim.empty_dict())
    if c.status == 'starting' then
      c.status = 'running'
    end
    local ready = c.on_ready
    c.on_ready = {}
    for _, fn in ipairs(ready) do
      fn(nil)
    end
  end)
  return c
end

--- Send any request to the bridge (starting it first if needed).
---@param method string e.g. protocol.methods.circle_enumCircles
---@param params table|nil by-name params; nil sends `{}`
---@param cb fun(err: table|nil, result: any)
function M.request(method, params, cb)
  vim.validate({ method = { method, 'string' }, cb = { cb, 'function' } })
  local c = conn
  if c == nil then
    local err
    c, err = start()
    if c == nil then
      vim.schedule(function()
        cb(err, nil)
      end)
      return
    end
  end
  if c.status == 'running' then
    send(c, method, params, cb)
  elseif c.status == 'starting' then
    table.insert(c.on_ready, function(err)
      if err then
        cb(err, nil)
      else
        send(c, method, params, cb)
      end
    end)
  else
    vim.schedule(function()
      cb(client_error('the bridge is shutting down (' .. method .. ' not sent)'), nil)
    end)
  end
end

--- `circle/enumCircles`: result `{ circles = { { circleId, circleName?, ... }, ... } }`.
--- Fields the bridge passes on beyond the documented ones (e.g. memberCount) are kept.
---@param cb fun(err: table|nil, result: circle_bridge.EnumCirclesResult|nil)
function M.enum_circles(cb)
  M.request(methods.circle_enumCircles, nil, function(err, result)
    if result and type(result.circles) == 'table' then
      last_circles = result.circles
    end
    cb(err, result)
  end)
end

--- `circle/enumTopics`: result `{ topics = { { topicId, topicName?, ... }, ... } }`.
---@param circle_id string
---@param cb fun(err: table|nil, result: circle_bridge.EnumTopicsResult|nil)
function M.enum_topics(circle_id, cb)
  vim.validate({ circle_id = { circle_id, 'string' } })
  M.request(methods.circle_enumTopics, { circleId = circle_id }, cb)
end

--- `circle/isServiceRunning`: result `{ running = boolean, serviceUrl = string }`.
---@param cb fun(err: table|nil, result: circle_bridge.IsServiceRunningResult|nil)
function M.is_service_running(cb)
  M.request(methods.circle_isServiceRunning, nil, cb)
end

--- Stop the bridge: wait for the calls in flight, then `shutdown`, then `exit`; SIGTERM if it
--- is still alive `exit_timeout_ms` after `exit`. Calls made after stop() fail at once. `cb(nil, { code, signal })` runs once the process is gone;
--- `cb(nil, nil)` if no bridge was running.
---@param cb fun(err: table|nil, exit: table|nil)|nil
function M.stop(cb)
  cb = cb or function() end
  local c = conn
  if c == nil then
    vim.schedule(function()
      cb(nil, nil)
    end)
    return
  end
  table.insert(c.exit_waiters, cb)
  if c.stop_requested then
    return
  end
  c.stop_requested = true
  local function shutdown()
    send(c, methods.shutdown, nil, function()
      -- Whatever `shutdown` answered, `exit` ends the process; the kill is the last resort.
      terminate(c)
    end)
  end
  -- The bridge answers `shutdown` at once and `exit` drops whatever is still in flight, so
  -- let the calls already sent finish first (each is bounded by request_timeout_ms).
  local function shutdown_when_idle()
    if next(c.pending) == nil then
      shutdown()
    else
      table.insert(c.idle_waiters, shutdown)
    end
  end
  if c.status == 'starting' then
    c.status = 'stopping'
    -- On a failed handshake the process is already being terminated.
    table.insert(c.on_ready, function(err)
      if not err then
        shutdown_when_idle()
      end
    end)
  else
    c.status = 'stopping'
    shutdown_when_idle()
  end
end

-- Scratch buffers by name, reused across calls.
local buffers = {}

local function buffer_line(text)
  return (tostring(text):gsub('[\r\n]', ' '))
end

local function show_scratch(name, lines)
  local buf = buffers[name]
  if not (buf and vim.api.nvim_buf_is_valid(buf)) then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
    vim.api.nvim_buf_set_option(buf, 'filetype', 'circlebridge')
    vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, silent = true, desc = 'Close' })
    buffers[name] = buf
  end
  vim.api.nvim_buf_set_option(buf, 'modifiable', true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_buf_set_option(buf, 'modifiable', false)
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 then
    vim.api.nvim_set_current_win(win)
  else
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, buf)
  end
  return buf
end

local CIRCLES_BUFFER = 'circle-bridge://circles'

--- The circles buffer's number, or nil if `:CircleCircles` has not made one.
function M.circles_buffer()
  local buf = buffers[CIRCLES_BUFFER]
  if buf and vim.api.nvim_buf_is_valid(buf) then
    return buf
  end
end

--- `:CircleCircles`: one line per circle, `name [id]`; <CR> on a line shows its topics.
function M.show_circles()
  M.enum_circles(function(err, result)
    if err then
      return M.notify_error(err)
    end
    local lines, ids = {}, {}
    for _, circle in ipairs(result.circles) do
      lines[#lines + 1] = buffer_line(string.format('%s [%s]', circle.circleName or '(unnamed)', circle.circleId))
      ids[#ids + 1] = circle.circleId
    end
    if #lines == 0 then
      lines = { '(no circles)' }
    end
    local buf = show_scratch(CIRCLES_BUFFER, lines)
    vim.api.nvim_buf_set_var(buf, 'circle_bridge_circle_ids', ids)
    vim.keymap.set('n', '<CR>', function()
      M.show_topics()
    end, { buffer = buf, silent = true, desc = 'Show the topics of this circle' })
  end)
end

--- `:CircleTopics [circleId]`: topics of the given circle, or of the circle on the cursor
--- line of the circles buffer.
---@param circle_id string|nil
function M.show_topics(circle_id)
  if circle_id == nil or circle_id == '' then
    local ok, ids = pcall(vim.api.nvim_buf_get_var, 0, 'circle_bridge_circle_ids')
    if ok then
      circle_id = ids[vim.api.nvim_win_get_cursor(0)[1]]
    end
    if circle_id == nil then
      vim.notify(
        'circle-bridge: give a circle id (:CircleTopics {circleId}) or run it on a line of :CircleCircles',
        vim.log.levels.ERROR
      )
      return
    end
  end
  M.enum_topics(circle_id, function(err, result)
    if err then
      return M.notify_error(err)
    end
    local lines = {}
    for _, topic in ipairs(result.topics) do
      lines[#lines + 1] = buffer_line(string.format('%s [%s]', topic.topicName or '(unnamed)', topic.topicId))
    end
    if #lines == 0 then
      lines = { '(no topics)' }
    end
    show_scratch('circle-bridge://topics/' .. circle_id, lines)
  end)
end

--- `:CircleStatus`: is the local CircleService reachable?
function M.show_status()
  M.is_service_running(function(err, result)
    if err then
      return M.notify_error(err)
    end
    local state = result.running and 'is running' or 'is NOT running'
    vim.notify(string.format('circle-bridge: CircleService %s at %s', state, result.serviceUrl), vim.log.levels.INFO)
  end)
end

local function complete_circle_ids(arg_lead)
  local out = {}
  for _, circle in ipairs(last_circles) do
    if type(circle.circleId) == 'string' and circle.circleId:sub(1, #arg_lead) == arg_lead then
      out[#out + 1] = circle.circleId
    end
  end
  return out
end

--- Define :CircleCircles, :CircleTopics, :CircleStatus and :CircleStop (idempotent).
function M.create_commands()
  local create = vim.api.nvim_create_user_command
  create('CircleCircles', function()
    M.show_circles()
  end, { nargs = 0, desc = 'circle-bridge: list your circles' })
  create('CircleTopics', function(args)
    M.show_topics(args.args)
  end, { nargs = '?', complete = complete_circle_ids, desc = 'circle-bridge: list the topics of a circle' })
  create('CircleStatus', function()
    M.show_status()
  end, { nargs = 0, desc = 'circle-bridge: is CircleService running?' })
  create('CircleStop', function()
    M.stop()
  end, { nargs = 0, desc = 'circle-bridge: stop the bridge process' })
end

return M
