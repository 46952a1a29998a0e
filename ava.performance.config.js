// Tests that measure throughput, run alone so that no other test file takes cores from them.
export default {
  files: ['dist/test/cluster-throughput.test.js'],
  workerThreads: false,
  timeout: '6m',
  concurrency: 1,
};
