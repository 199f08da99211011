-- wrk script: prints one machine-readable line with what run.sh tabulates.
-- errors.status is wrk's count of responses with a status above 399 (our upstream only
-- answers 200 or 403, and sigv4d's own errors are 4xx/5xx), so any failure shows up there.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d bytes=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    summary.bytes))
end
