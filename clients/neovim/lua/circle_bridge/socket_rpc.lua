--- A JSON-RPC client over a Unix socket or TCP connection, with the shape of the client that
--- `vim.lsp.rpc.start` returns (`request`, `notify`, `terminate`, `is_closing`), so that
--- circle_bridge's connection code serves a spawned bridge and a daemon alike.
---
--- Neovim 0.7 has no `vim.lsp.rpc.connect` (0.8 added TCP, 0.10 pipes), hence this ~150 lines of
--- LSP framing on libuv. Callbacks and dispatchers always run scheduled on the main loop.
local uv = vim.loop

local M = {}

local function encode_frame(message)
  local body = vim.json.encode(message)
  return string.format('Content-Length: %d\r\n\r\n%s', #body, body)
end

--- Connect to `address` ({ path = '/run/…/bridge.sock' } or { host = '127.0.0.1', port = n })
--- and return the client at once; writes wait for the connection. `dispatchers.on_exit(code,
--- signal, reason)` runs once, when the connection fails, is closed by the peer, or `terminate()`.
---@param address table
---@param dispatchers table { notification = fun(method, params), on_exit = fun(code, signal, reason) }
function M.connect(address, dispatchers)
  local handle
  if address.path then
    handle = uv.new_pipe(false)
  else
    handle = uv.new_tcp()
  end
  local where = address.path or string.format('%s:%d', address.host, address.port)
  local connected = false
  local closed = false
  local queue = {}
  local callbacks = {}
  local next_id = 0
  local buffer = ''

  local client = { where = where }

  local function close(code, reason)
    if closed then
      return
    end
    closed = true
    if not handle:is_closing() then
      handle:close()
    end
    callbacks = {} -- as vim.lsp.rpc: the owner fails what is pending, in on_exit
    vim.schedule(function()
      dispatchers.on_exit(code, 0, reason)
    end)
  end

  local function dispatch(message)
    if message.method ~= nil then
      if message.id == nil then
        vim.schedule(function()
          dispatchers.notification(message.method, message.params)
        end)
      else -- the protocol defines no server requests; answer as vim.lsp.rpc does
        client.write({
          jsonrpc = '2.0',
          id = message.id,
          error = { code = -32601, message = 'Method not found: ' .. message.method },
        })
      end
      return
    end
    local cb = type(message.id) == 'number' and callbacks[message.id]
    if cb then
      callbacks[message.id] = nil
      local err = message.error
      local result = message.result
      if result == vim.NIL then
        result = nil
      end
      vim.schedule(function()
        cb(err, result)
      end)
    end
  end

  -- Parse every complete frame in `buffer`; false on a malformed header (the stream is lost).
  local function parse()
    while true do
      local header_end = buffer:find('\r\n\r\n', 1, true)
      if not header_end then
        return true
      end
      local length = tonumber(buffer:sub(1, header_end - 1):match('[Cc]ontent%-[Ll]ength:%s*(%d+)'))
      if not length then
        return false
      end
      local body_start = header_end + 4
      if #buffer < body_start + length - 1 then
        return true
      end
      local body = buffer:sub(body_start, body_start + length - 1)
      buffer = buffer:sub(body_start + length)
      local ok, message = pcall(vim.json.decode, body)
      if ok and type(message) == 'table' then
        dispatch(message)
      end
    end
  end

  function client.write(message)
    if closed then
      return false
    end
    local frame = encode_frame(message)
    if connected then
      handle:write(frame)
    else
      table.insert(queue, frame)
    end
    return true
  end

  function client.request(method, params, callback)
    next_id = next_id + 1
    local id = next_id
    if not client.write({ jsonrpc = '2.0', id = id, method = method, params = params }) then
      return false
    end
    callbacks[id] = callback
    return true, id
  end

  function client.notify(method, params)
    return client.write({ jsonrpc = '2.0', method = method, params = params or vim.empty_dict() })
  end

  function client.is_closing()
    return closed
  end

  function client.terminate()
    close(0, nil)
  end

  local function on_connect(err)
    if err then
      return close(1, string.format('could not connect to %s: %s', where, err))
    end
    connected = true
    for _, frame in ipairs(queue) do
      handle:write(frame)
    end
    queue = {}
    handle:read_start(function(read_err, chunk)
      if read_err then
        return close(1, string.format('reading from %s: %s', where, read_err))
      end
      if chunk == nil then
        return close(0, nil) -- the daemon ended this connection (after `exit`, or going away)
      end
      buffer = buffer .. chunk
      if not parse() then
        close(1, 'malformed frame from ' .. where)
      end
    end)
  end

  if address.path then
    handle:connect(address.path, on_connect)
  else
    handle:connect(address.host, address.port, on_connect)
  end
  return client
end

return M
