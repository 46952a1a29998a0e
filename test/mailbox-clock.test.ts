import test from 'ava';
import { Mailbox } from '../runtime/mailbox.js';
import { ConfigError, MailboxFull, RemoteFailure, VirtualClock } from '../runtime/index.js';
import { reviveError } from '../runtime/errors.js';

test('urgent items are taken before bulk ones; each lane is FIFO', (t) => {
  const box = new Mailbox<string>();
  box.push('b1', false);
  box.push('b2', false);
  box.push('u1', true);
  box.push('b3', false);
  box.push('u2', true);
  t.deepEqual([box.shift(), box.shift(), box.shift(), box.shift(), box.shift(), box.shift()], ['u1', 'u2', 'b1', 'b2', 'b3', undefined]);
});

test('reject policy refuses the newest item when a lane is full', (t) => {
  const box = new Mailbox<number>({ capacity: 2 });
  t.true(box.push(1, false).ok);
  t.true(box.push(2, false).ok);
  t.false(box.push(3, false).ok);
  t.true(box.push(4, true).ok, 'lanes are bounded separately');
  t.deepEqual(box.drain(), [4, 1, 2]);
});

test('drop-oldest policy evicts the oldest item of the full lane and reports it', (t) => {
  const box = new Mailbox<number>({ capacity: 2, overflow: 'drop-oldest' });
  box.push(1, false);
  box.push(2, false);
  const result = box.push(3, false);
  t.deepEqual(result, { ok: true, dropped: 1 });
  t.deepEqual(box.drain(), [2, 3]);
});

test('bad mailbox options are configuration errors', (t) => {
  t.throws(() => new Mailbox({ capacity: 0 }), { instanceOf: ConfigError });
  t.throws(() => new Mailbox({ overflow: 'spill' as 'reject' }), { instanceOf: ConfigError });
});

test('the virtual clock fires timers in due order only when advanced', (t) => {
  const clock = new VirtualClock();
  const fired: string[] = [];
  clock.setTimer(() => fired.push('b@20'), 20);
  clock.setTimer(() => fired.push('a@10'), 10);
  const c = clock.setTimer(() => fired.push('c@15'), 15);
  clock.setTimer(() => fired.push('d@10'), 10);
  clock.clearTimer(c);
  clock.advance(9);
  t.deepEqual(fired, []);
  clock.advance(11);
  t.deepEqual(fired, ['a@10', 'd@10', 'b@20']);
  t.is(clock.now(), 20);
  t.is(clock.pending, 0);
});

test('errors revived from another thread keep their class, and unknown codes become RemoteFailure', (t) => {
  t.true(reviveError({ code: 'MAILBOX_FULL', message: 'full' }) instanceof MailboxFull);
  for (const code of ['constructor', '__proto__', 'ENOENT', undefined]) {
    const error = reviveError({ code, message: 'x' });
    t.true(error instanceof RemoteFailure, String(code));
    t.is(error.code, 'REMOTE_FAILURE');
  }
  t.regex(reviveError({ code: 'ENOENT', message: 'no file' }).message, /ENOENT: no file/);
});
