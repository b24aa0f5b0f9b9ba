-- Headless end-to-end test of circle/putSecret and circle/getSecret from Neovim: a real
-- `circle-bridge serve --stdio` started by the plugin, a real emulator started by test/run.sh.
-- Every wait is bounded; the last line is `neovim: N passed, M failed`.

local h = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local WAIT_MS, eq, test = h.WAIT_MS, h.eq, h.test

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

h.finish(main, function()
  if cb_mod.pid() then
    h.await('final stop', cb_mod.stop)
  end
end)
