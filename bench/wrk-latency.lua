-- wrk --latency prints 50/75/90/99 %; the tail bars also need 99.9 % (microseconds, as wrk records them).
done = function(summary, latency, requests)
  io.write(string.format("p99.9 latency: %dus\n", latency:percentile(99.9)))
end
