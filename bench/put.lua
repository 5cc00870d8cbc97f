-- wrk script for bench/gateway_bench.py: PUT <url> with a JSON body.
--
--   wrk -t1 -c64 -d8s --latency -s bench/put.lua http://127.0.0.1:8080/v1/customers/1 -- BODY_FILE [TOKEN]
--
-- TOKEN, if given, is sent as "Authorization: Bearer TOKEN". BODY_FILE defaults to examples/customer_api/sample_customer.json next to this script's
-- folder. At the end, one line starting with "WRK_JSON " carries the results as JSON
-- (latencies in microseconds) for the benchmark driver to read.

local function default_body_file()
  local source = debug.getinfo(1, "S").source
  local dir = source:match("^@(.*)/[^/]*$") or "."
  return dir .. "/../examples/customer_api/sample_customer.json"
end

wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local path = args[1] or default_body_file()
  if args[2] then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f,"stdev":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, latency.stdev))
end
