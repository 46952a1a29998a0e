import test from 'ava';
import fc from 'fast-check';
import { BatchWriter, CLONE_BYTES, decodeValue, encodeLocalPayload, encodeValue, encodeValueView, EnvelopeKind, isBadFrame, readBatch, RECYCLE_BYTES, type EnvelopeHeader } from '../runtime/envelope.js';
import { DecodeError, MessageTooLarge } from '../runtime/index.js';
import { testSeed } from './helpers/seed.js';

const header = (to: string, urgent = false): EnvelopeHeader => ({ kind: EnvelopeKind.Tell, urgent, to, toIncarnation: 2, fromThread: 1, from: 'src', fromIncarnation: 0 });

test('a batch round-trips its frames in order and is exactly as long as what was written', (t) => {
  const writer = new BatchWriter(16);
  const payloads = [encodeValue({ a: 1 }, 1024), encodeValue('x'.repeat(500), 1024), encodeValue([1, 2, 3], 1024)];
  payloads.forEach((p, i) => writer.push(header(`a${i}`), p));
  const written = writer.byteLength;
  const batch = writer.take();
  t.is(batch.length, written);
  t.is(batch.buffer.byteLength, written, 'the batch owns an exact-size buffer, so transferring it never ships a pool');
  const frames = [...readBatch(batch)];
  t.is(frames.length, 3);
  frames.forEach((f, i) => {
    if (isBadFrame(f)) return t.fail(f.error.message);
    t.is(f.header.to, `a${i}`);
    t.deepEqual(f.payload, payloads[i]);
  });
  t.is(writer.count, 0);
});

test('frames read from a batch own their bytes: the batch may be overwritten (reused) at once', (t) => {
  const writer = new BatchWriter(64);
  writer.push(header('a'), encodeValue({ sig: new Uint8Array([1, 2, 3]) }, 1024));
  writer.push(header('b'), new Uint8Array([0xc1]));
  writer.push(header('c'), encodeValue('tail', 1024));
  const batch = writer.take();
  const items = readBatch(batch.subarray(0, batch.length - 2));
  batch.fill(0xff);
  const [a, bad, truncated] = items;
  if (!a || isBadFrame(a)) return t.fail('first frame unreadable');
  t.deepEqual(decodeValue(a.payload), { sig: new Uint8Array([1, 2, 3]) });
  if (!bad || isBadFrame(bad)) return t.fail('second frame header unreadable');
  t.deepEqual(bad.payload, new Uint8Array([0xc1]));
  if (!truncated || !isBadFrame(truncated)) return t.fail('the cut frame should be bad');
  t.false(truncated.bytes.every((b) => b === 0xff), 'a bad frame keeps the bytes it arrived with');
});

test('a large batch leaves in the writer\'s own buffer, and buffers handed back serve later batches', (t) => {
  const capacity = 4 * RECYCLE_BYTES;
  const writer = new BatchWriter(capacity);
  const big = new Uint8Array(RECYCLE_BYTES);
  writer.push(header('a'), big);
  const written = writer.byteLength;
  const first = writer.take();
  t.is(first.length, written);
  t.is(first.buffer.byteLength, capacity, 'no copy: the batch is a view of the writer\'s whole buffer');
  writer.recycle(first.buffer as ArrayBuffer);
  writer.push(header('a'), big);
  const second = writer.take();
  t.not(second.buffer, first.buffer);
  t.is(writer.reused, 1, 'the writer took the handed-back buffer to write the next batch in');
  writer.push(header('a'), big);
  t.is(writer.take().buffer, first.buffer);

  const small = encodeValue({ n: 1 }, 1024);
  writer.push(header('a'), small);
  const smallSize = writer.byteLength;
  t.is(writer.take().buffer.byteLength, smallSize, 'with no spare, a small batch is an exact-size copy');
  writer.recycle(second.buffer as ArrayBuffer);
  writer.push(header('a'), small);
  t.is(writer.take().buffer.byteLength, smallSize, 'a batch under CLONE_BYTES is cloned when posted: it takes no spare');
  const medium = encodeValue({ body: new Uint8Array(CLONE_BYTES) }, 4 * CLONE_BYTES);
  writer.push(header('a'), medium);
  const copied = writer.take();
  t.is(copied.buffer, second.buffer, 'a batch between CLONE_BYTES and RECYCLE_BYTES is copied into a spare');
  const frame = readBatch(copied)[0];
  if (!frame || isBadFrame(frame)) return t.fail('unreadable');
  t.deepEqual(decodeValue(frame.payload), { body: new Uint8Array(CLONE_BYTES) });
  t.is(writer.reused, 2);

  // A writer with a full hand of small spares still keeps a large buffer coming back.
  for (let i = 0; i < 16; i++) writer.recycle(new ArrayBuffer(64));
  const large = new ArrayBuffer(capacity);
  writer.recycle(large);
  writer.push(header('a'), big);
  writer.take();
  writer.push(header('a'), big);
  t.is(writer.take().buffer, large, 'the large buffer displaced a small one and carried a large batch');
});

test('a same-thread payload owns its bytes, small or large, whatever is encoded after it', (t) => {
  for (const size of [10, 4 * 1024, 64 * 1024]) {
    const body = new Uint8Array(size).map((_, i) => i % 251);
    const payload = encodeLocalPayload({ body }, 1 << 20);
    encodeValueView({ body: new Uint8Array(size).fill(0xee) }, 1 << 20);
    t.deepEqual(decodeValue(payload), { body }, `${size} bytes`);
  }
});

test('encodeValue refuses a value over the limit with MessageTooLarge', (t) => {
  t.throws(() => encodeValue(new Uint8Array(2000), 1000), { instanceOf: MessageTooLarge });
});

test('decodeValue turns truncated or over-long msgpack into DecodeError', (t) => {
  for (const bad of [new Uint8Array([0x01, 0x02]), new Uint8Array([0x92, 0x01]), new Uint8Array([0xa5, 0x61]), new Uint8Array([0xdc, 0x00])]) {
    t.throws(() => decodeValue(bad), { instanceOf: DecodeError });
  }
});

test('fuzz: random bytes never make readBatch throw, and every bad frame is reported', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        let count = 0;
        for (const item of readBatch(bytes)) {
          count++;
          if (isBadFrame(item) && !(item.error instanceof DecodeError)) return false;
        }
        return bytes.length === 0 ? count === 0 : count >= 1;
      }),
      { seed, numRuns: 2000 },
    ),
  );
});

test('fuzz: mutating a valid batch yields valid frames or bad frames, never an exception or a wrong header', (t) => {
  const seed = testSeed(t);
  const writer = new BatchWriter();
  for (let i = 0; i < 4; i++) writer.push(header(`actor-${i}`, i % 2 === 0), encodeValue({ type: 'add', n: i }, 1 << 20));
  const pristine = writer.take();
  t.notThrows(() =>
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: pristine.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat({ max: pristine.length }),
        (mutations, cut) => {
          const bytes = pristine.slice(0, Math.max(1, cut));
          for (const [at, value] of mutations) if (at < bytes.length) bytes[at] = value;
          for (const item of readBatch(bytes)) {
            if (isBadFrame(item)) {
              if (!(item.error instanceof DecodeError)) return false;
            } else {
              // A frame that survives must still carry a schema-valid header.
              if (typeof item.header.to !== 'string' || !Number.isSafeInteger(item.header.toIncarnation)) return false;
              try {
                decodeValue(item.payload);
              } catch (error) {
                if (!(error instanceof DecodeError)) return false;
              }
            }
          }
          return true;
        },
      ),
      { seed, numRuns: 3000 },
    ),
  );
});
