// Test files run two at a time (this machine class has two cores, and most files wait on worker
// threads and timers), except those that measure: see ava.performance.config.js, which `npm test`
// runs after these. ava's inactivity timeout stays longer than any test's own t.timeout (.ci/run).
export default {
  files: ['dist/test/**/*.test.js', '!dist/test/cluster-throughput.test.js'],
  workerThreads: false,
  timeout: '6m',
  concurrency: 2,
};
