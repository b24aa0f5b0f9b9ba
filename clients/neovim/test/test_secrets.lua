-- Headless end-to-end test of circle/putSecret and circle/getSecret from Neovim: a real
-- `circle-bridge serve --stdio` started by the plugin, a real emulator started by test/run.sh.
-- Every wait is bounded; the last line is `neovim: N passed, M failed`.

local WAIT_MS = 20000
local passed, failed = 0, 0

local function out(line)
  io.stdout:write(line .. '\n')
  io.stdout:flush()
end

local function eq(actual, expected, what)
  if actual ~= expected then
    error(string.format('%s: expected %s, got %s', what, vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

local function test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    out('ok     ' .. name)
  else
    failed = failed + 1
    out('FAILED ' .. name .. '\n' .. tostring(err))
  end
end

-- Call `method` and wait (bounded) for its callback; returns err, result.
local function call(method, params)
  local done, e, r = false, nil, nil
  require('circle_bridge').request(method, params, function(err, result)
    done, e, r = true, err, result
  end)
  assert(
    vim.wait(WAIT_MS, function()
      return done
    end, 10),
    method .. ': no callback within ' .. WAIT_MS .. ' ms'
  )
  return e, r
end

local bridge_bin = assert(os.getenv('CIRCLE_BRIDGE_BIN'), 'CIRCLE_BRIDGE_BIN is not set (use test/run.sh)')
local cb_mod = require('circle_bridge')
local protocol = require('circle_bridge.protocol')
local methods = protocol.methods

local function main()
  cb_mod.setup({ cmd = { bridge_bin, 'serve', '--stdio' } })

  test('the generated protocol table names the secret methods', function()
    eq(methods.circle_putSecret, 'circle/putSecret', 'putSecret')
    eq(methods.circle_getSecret, 'circle/getSecret', 'getSecret')
    eq(protocol.method_kinds['circle/getSecret'], 'request', 'kind')
  end)

  test('putSecret then getSecret returns the value, unicode intact', function()
    local err, where = call(methods.circle_putSecret, { name = 'nvim-token', value = 'sécret ✓ 🔑' })
    eq(err, nil, 'putSecret error')
    assert(type(where.circleId) == 'string' and type(where.topicId) == 'string', vim.inspect(where))
    local gerr, got = call(methods.circle_getSecret, { name = 'nvim-token' })
    eq(gerr, nil, 'getSecret error')
    eq(got.found, true, 'found')
    eq(got.value, 'sécret ✓ 🔑', 'value')
    eq(got.circleId, where.circleId, 'same circle')
    eq(got.topicId, where.topicId, 'same topic')
    assert(got.time:match('^%d%d%d%d%-%d%d%-%d%dT.*Z$'), 'ISO 8601 time: ' .. tostring(got.time))
  end)

  test('the newest put wins', function()
    eq((call(methods.circle_putSecret, { name = 'nvim-token', value = 'rotated' })), nil, 'putSecret error')
    local _, got = call(methods.circle_getSecret, { name = 'nvim-token' })
    eq(got.value, 'rotated', 'value')
  end)

  test('a name never stored is found = false, not an error', function()
    local err, got = call(methods.circle_getSecret, { name = 'nvim-never-stored' })
    eq(err, nil, 'error')
    eq(got.found, false, 'found')
    eq(got.value, nil, 'value')
  end)

  test('an unknown circle is CircleOperationFailed with the upstream message', function()
    local err = call(methods.circle_getSecret, { name = 'x', circleId = 'no-such-circle' })
    assert(err ~= nil, 'must fail')
    eq(err.code, protocol.error_codes.CircleOperationFailed, 'code')
    eq(err.data.upstreamMessage, 'Circle not found', 'upstreamMessage')
  end)

  test('a missing name is InvalidParams naming the field', function()
    local err = call(methods.circle_putSecret, { value = 'v' })
    eq(err.code, protocol.error_codes.InvalidParams, 'code')
    eq(err.data.field, 'name', 'field')
  end)
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  failed = failed + 1
  out('FAILED (outside a test)\n' .. tostring(err))
end
if cb_mod.pid() then
  local done = false
  cb_mod.stop(function()
    done = true
  end)
  vim.wait(WAIT_MS, function()
    return done
  end, 10)
end
out(string.format('neovim: %d passed, %d failed', passed, failed))
if failed > 0 then
  vim.cmd('cquit 1')
else
  vim.cmd('qall!')
end
