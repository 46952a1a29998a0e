import test from 'ava';
import fc from 'fast-check';
import { BatchWriter, decodeValue, encodeValue, EnvelopeKind, isBadFrame, readBatch, type EnvelopeHeader } from '../runtime/envelope.js';
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
