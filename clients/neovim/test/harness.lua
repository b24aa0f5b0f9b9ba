-- What every headless test file shares: bounded waits, assertions, a test runner that counts, a
-- tiny HTTP client for the emulator's control API (Neovim 0.7 has none), and the summary line
-- test/run.sh adds up. Load it with `dofile` from a test file (see test_*.lua).

local M = { WAIT_MS = 20000 }
local passed, failed = 0, 0

function M.out(line)
  io.stdout:write(line .. '\n')
  io.stdout:flush()
end

function M.check(cond, message)
  if not cond then
    error(message or 'check failed', 2)
  end
end

function M.eq(actual, expected, what)
  if actual ~= expected then
    error(string.format('%s: expected %s, got %s', what, vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

-- `cleanup` (optional) runs after `fn` whether it failed or not, so a failure does not leak
-- into the next test.
function M.test(name, fn, cleanup)
  local ok, err = xpcall(fn, debug.traceback)
  if cleanup then
    local cok, cerr = xpcall(cleanup, debug.traceback)
    if ok and not cok then
      ok, err = false, 'in cleanup: ' .. tostring(cerr)
    end
  end
  if ok then
    passed = passed + 1
    M.out('ok     ' .. name)
  else
    failed = failed + 1
    M.out('FAILED ' .. name .. '\n' .. tostring(err))
  end
end

-- Run an async `fn(cb)` and wait (bounded) for `cb(err, result)`.
function M.await(what, fn)
  local done, e, r = false, nil, nil
  fn(function(err, result)
    done, e, r = true, err, result
  end)
  M.check(vim.wait(M.WAIT_MS, function()
    return done
  end, 10), what .. ': no callback within ' .. M.WAIT_MS .. ' ms')
  return e, r
end

function M.wait_for(what, predicate)
  M.check(vim.wait(M.WAIT_MS, predicate, 10), what .. ': not reached within ' .. M.WAIT_MS .. ' ms')
end

-- One HTTP/1.1 request over plain luv TCP; returns the status and the body.
function M.http(method, url, body)
  local host, port, path = url:match('^http://([^/:]+):(%d+)(/.*)$')
  assert(host, 'not an http://host:port/path URL: ' .. url)
  body = body or ''
  local tcp = vim.loop.new_tcp()
  local chunks, done, failure = {}, false, nil
  tcp:connect(host, tonumber(port), function(cerr)
    if cerr then
      failure, done = cerr, true
      tcp:close()
      return
    end
    tcp:write(table.concat({
      method .. ' ' .. path .. ' HTTP/1.1\r\n',
      'Host: ' .. host .. ':' .. port .. '\r\n',
      'Content-Type: application/json\r\n',
      'Content-Length: ' .. #body .. '\r\n',
      'Connection: close\r\n\r\n',
      body,
    }))
    tcp:read_start(function(rerr, chunk)
      if rerr or not chunk then
        failure = rerr
        done = true
        tcp:close()
      else
        chunks[#chunks + 1] = chunk
      end
    end)
  end)
  M.check(vim.wait(M.WAIT_MS, function()
    return done
  end, 10), method .. ' ' .. url .. ': no reply')
  M.check(failure == nil, method .. ' ' .. url .. ': ' .. tostring(failure))
  local reply = table.concat(chunks)
  return tonumber(reply:match('^HTTP/1%.%d (%d%d%d)')), reply:match('\r\n\r\n(.*)$')
end

-- Run `main` (a failure outside any test counts too), then `finally`, print the summary line and
-- quit Neovim with the verdict.
function M.finish(main, finally)
  local ok, err = xpcall(main, debug.traceback)
  if not ok then
    failed = failed + 1
    M.out('FAILED (outside a test)\n' .. tostring(err))
  end
  if finally then
    pcall(finally)
  end
  M.out(string.format('neovim: %d passed, %d failed', passed, failed))
  if failed > 0 then
    vim.cmd('cquit 1')
  else
    vim.cmd('qall!')
  end
end

return M
