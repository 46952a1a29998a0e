// Tests that measure throughput, run alone so that no other test file takes cores from them.
import base from './ava.config.js';

export default { ...base, files: ['dist/test/cluster-throughput.test.js'], concurrency: 1 };
