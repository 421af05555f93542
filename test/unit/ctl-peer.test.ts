// CtlPeer (src/replication/files/ctl.ts): request/response over the `ctl` messages of a replication channel, and the
// hand-over of the channel to the live stream. Runs on an in-memory channel pair (./memory-channel.ts) that delivers
// frames sent in the same tick in one synchronous loop, as the TCP channel does with the frames of one chunk.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CtlError, CtlPeer } from '../../src/replication/files/ctl.js';
import { decode, encode, MAX_WRITE, type Message } from '../../src/replication/stream/codec.js';
import { ReplicationError } from '../../src/replication/stream/errors.js';
import { channelPair, type MemoryChannel } from './memory-channel.js';

function peers() {
  const { a, b } = channelPair();
  return { a, b, client: new CtlPeer(a), server: new CtlPeer(b) };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.unreachable('expected a rejection');
  throw new Error('unreachable');
}

/** the messages an end sent, decoded */
function sent(ch: MemoryChannel): Message[] {
  return ch.sentFrames.map((f) => {
    const d = decode(f);
    if (!d.ok) throw new Error(d.error);
    return d.msg;
  });
}

const answersTo = (ch: MemoryChannel, id: number) => sent(ch).filter((m) => m.type === 'ctl' && m.body.re === id);
const tick = () => new Promise((r) => setImmediate(r));

test('request → response: the handler gets the body (with its id) and the data; the answer carries re, ok and data', async () => {
  const { client, server, a, b } = peers();
  const seen: unknown[] = [];
  server.serve(async (body, data) => {
    seen.push({ body, data: data?.toString() });
    return { body: { doubled: (body.n as number) * 2 }, ...(data ? { data: Buffer.from('reply bytes') } : {}) };
  });
  const r = await client.request({ op: 'double', n: 21 }, Buffer.from('request bytes'));
  assert.equal(r.body, { doubled: 42, re: 1, ok: true });
  assert.is(r.data?.toString(), 'reply bytes');
  assert.equal(seen, [{ body: { op: 'double', n: 21, id: 1 }, data: 'request bytes' }]);
  const r2 = await client.request({ op: 'double', n: 1 });
  assert.equal(r2.body, { doubled: 2, re: 2, ok: true }, 'ids count up');
  assert.is(r2.data, undefined, 'no data key when the answer has none');
  assert.is(a.reason, undefined);
  assert.is(b.reason, undefined);
  client.close();
});

test('an error answer rejects with CtlError and its code; a handler error with `code` passes the code on', async () => {
  const { client, server } = peers();
  server.serve(async (body) => {
    if (body.op === 'ctl') throw new CtlError('generation is 8@n2, not 7@n1', 'EGEN');
    if (body.op === 'fs') throw Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: 'ENOENT' });
    if (body.op === 'nocode') throw new Error('plain failure');
    throw Object.assign(new Error('numeric code'), { code: 28 });
  });
  const e1 = await rejection(client.request({ op: 'ctl' }));
  assert.instance(e1, CtlError);
  assert.is(e1.message, 'generation is 8@n2, not 7@n1');
  assert.is((e1 as CtlError).code, 'EGEN');
  const e2 = await rejection(client.request({ op: 'fs' }));
  assert.instance(e2, CtlError);
  assert.is((e2 as CtlError).code, 'ENOENT');
  assert.match(e2.message, /no such file/);
  const e3 = await rejection(client.request({ op: 'nocode' }));
  assert.instance(e3, CtlError);
  assert.is((e3 as CtlError).code, undefined);
  assert.is(e3.message, 'plain failure');
  const e4 = await rejection(client.request({ op: 'numeric' }));
  assert.is((e4 as CtlError).code, undefined, 'only string codes are passed on');
  // the channel survives error answers
  server.serve(async () => ({ body: { fine: true } }));
  assert.is((await client.request({ op: 'again' })).body.fine, true);
  client.close();
});

test('a peer that serves nothing answers every request with an error', async () => {
  const { client } = peers();
  const e = await rejection(client.request({ op: 'begin' }));
  assert.instance(e, CtlError);
  assert.match(e.message, /does not serve/);
  client.close();
});

test('concurrent requests each resolve with their own answer, whatever order the answers come in', async () => {
  const { client, server } = peers();
  const release: Array<() => void> = [];
  server.serve((body) => new Promise((resolve) => release.push(() => resolve({ body: { echo: body.n } }))));
  const ns = [10, 11, 12, 13, 14, 15];
  const all = Promise.all(ns.map((n) => client.request({ op: 'echo', n })));
  while (release.length < ns.length) await tick();
  for (const i of [3, 0, 5, 1, 4, 2]) release[i]!(); // answers leave out of order
  const got = await all;
  assert.equal(got.map((r) => r.body.echo), ns);
  assert.equal(got.map((r) => r.body.re), [1, 2, 3, 4, 5, 6]);
  client.close();
});

test('the channel closing rejects every pending request with the channel failure; later requests reject at once', async () => {
  const { client, server, b } = peers();
  server.serve(() => new Promise(() => {})); // never answers
  const p1 = client.request({ op: 'slow', n: 1 });
  const p2 = client.request({ op: 'slow', n: 2 });
  while (b.stats().framesReceived < 2) await tick();
  b.close(); // the other side goes away
  const [e1, e2] = await Promise.all([rejection(p1), rejection(p2)]);
  assert.instance(e1, ReplicationError);
  assert.is((e1 as ReplicationError).reason, 'link-lost');
  assert.is(e2, e1);
  const e3 = await rejection(client.request({ op: 'after' }));
  assert.is(e3, e1);
});

test('closing this side rejects pending requests too', async () => {
  const { client, server } = peers();
  server.serve(() => new Promise(() => {}));
  const p = client.request({ op: 'slow' });
  client.close();
  const e = await rejection(p);
  assert.instance(e, ReplicationError);
  assert.is((e as ReplicationError).reason, 'link-lost');
});

test('a frame that is not a ctl message closes the channel with a protocol error; pending requests get it', async () => {
  const { a, b, client } = peers();
  const p = client.request({ op: 'x' });
  await b.send(encode({ type: 'ack', upTo: 1 }));
  const e = await a.closed;
  assert.instance(e, ReplicationError);
  assert.is((e as ReplicationError).reason, 'protocol');
  assert.match(e!.message, /unexpected ack message/);
  assert.is(await rejection(p), e);
});

test('an undecodable frame and a ctl request without id are protocol errors too; heartbeats and unknown answers are ignored', async () => {
  {
    const { a, b } = peers();
    await b.send(Buffer.from([1, 99]));
    const e = await a.closed;
    assert.is((e as ReplicationError).reason, 'protocol');
    assert.match(e!.message, /unknown message type 99/);
  }
  {
    const { a, b } = peers();
    await b.send(encode({ type: 'ctl', body: { op: 'begin' } }));
    const e = await a.closed;
    assert.is((e as ReplicationError).reason, 'protocol');
    assert.match(e!.message, /without id/);
  }
  {
    const { a, b, client } = peers();
    const p = client.request({ op: 'x' });
    await b.send(encode({ type: 'heartbeat' }));
    await b.send(encode({ type: 'ctl', body: { re: 77, ok: true } })); // an answer to nothing asked
    await b.send(encode({ type: 'ctl', body: { re: 1, ok: true, v: 'the real one' } }));
    assert.is((await p).body.v, 'the real one');
    assert.is(a.reason, undefined);
    client.close();
  }
});

test('handoff() inside the `sync` callback: the frame sent right behind the answer goes to the new owner, not to the CtlPeer', async () => {
  const { a, b, client, server } = peers();
  const hello = encode({ type: 'hello', module: 'db', generation: '7@n2', mode: 'none', dirs: ['/srv/data'] });
  const change = encode({ type: 'change', seq: 1, change: { dir: '/srv/data', op: 'unlink', path: 'f' } });
  server.serve(async (body) => {
    server.answerNow(body.id as number, { live: true });
    const live = server.handoff();
    void live.send(hello); // same tick as the answer: both arrive in one delivery loop on the other side
    void live.send(change);
    return { body: { answered: true } };
  });
  const got: Buffer[] = [];
  let framesBeforeHandoff = -1;
  const r = await client.request({ op: 'done' }, undefined, () => {
    framesBeforeHandoff = a.stats().framesReceived;
    client.handoff().onFrame((f) => got.push(f));
  });
  assert.is(r.body.live, true);
  assert.is(framesBeforeHandoff, 1, 'sync ran while the answer was being delivered, before the next frame');
  while (got.length < 2) await tick();
  assert.equal(got, [hello, change]);
  assert.is(a.reason, undefined, 'the CtlPeer did not see the hello (it would have closed the channel)');
  assert.is(b.reason, undefined);
  assert.is(answersTo(b, 1).length, 1);
  a.close();
});

test('handoff(): frames that arrive before the new owner sets onFrame are kept and delivered first, in order', async () => {
  const { a, b, client } = peers();
  const live = client.handoff();
  await b.send(encode({ type: 'ack', upTo: 1 }));
  await b.send(encode({ type: 'ack', upTo: 2 }));
  while (a.stats().framesReceived < 2) await tick();
  const got: Message[] = [];
  live.onFrame((f) => {
    const d = decode(f);
    if (d.ok) got.push(d.msg);
  });
  assert.equal(got, [{ type: 'ack', upTo: 1 }, { type: 'ack', upTo: 2 }], 'kept frames, delivered inside onFrame');
  await b.send(encode({ type: 'ack', upTo: 3 }));
  while (got.length < 3) await tick();
  assert.equal(got.at(-1), { type: 'ack', upTo: 3 });
  assert.is(a.reason, undefined);
  assert.is(live.peer, 'n2');
  assert.is(live.module, 'db');
  a.close();
});

test('(why `sync` exists) handing off only after the request resolved is too late: the next frame hit the CtlPeer', async () => {
  const { a, client, server } = peers();
  server.serve(async (body) => {
    server.answerNow(body.id as number, { live: true });
    void server.handoff().send(encode({ type: 'hello', module: 'db', generation: 'g', mode: 'none', dirs: [] }));
    return { body: { answered: true } };
  });
  await client.request({ op: 'done' });
  const e = await a.closed;
  assert.is((e as ReplicationError).reason, 'protocol');
  assert.match(e!.message, /unexpected hello/);
});

test('answerNow + { answered: true } sends exactly one answer, the one given to answerNow', async () => {
  const { b, client, server } = peers();
  let handlerDone = false;
  server.serve(async (body) => {
    server.answerNow(body.id as number, { live: true, gen: '7@n2' });
    await tick();
    handlerDone = true;
    return { body: { answered: true, ignored: 'x' } };
  });
  const r = await client.request({ op: 'begin', attach: true });
  assert.equal(r.body, { live: true, gen: '7@n2', re: 1, ok: true });
  while (!handlerDone) await tick();
  await tick();
  await tick();
  assert.equal(answersTo(b, 1), [{ type: 'ctl', body: { live: true, gen: '7@n2', re: 1, ok: true } }]);
  client.close();
});

test('a `sync` callback that throws closes the channel with that error and the request rejects (it does not stay pending)', async () => {
  // CtlPeer.onFrame deletes the pending entry before calling p.sync; when sync throws, p.resolve is skipped and the
  // close handler no longer finds the entry: the request never settles (syncOnce/attach would wait forever).
  const { a, client, server } = peers();
  server.serve(async () => ({ body: { live: true } }));
  const boom = new Error('receiver setup failed');
  const outcome = await Promise.race([
    client.request({ op: 'done' }, undefined, () => { throw boom; }).then(() => 'resolved', (e: Error) => `rejected: ${e.message}`),
    new Promise<string>((r) => setTimeout(() => r('still pending after 1 s'), 1000)),
  ]);
  assert.is(await a.closed, boom, 'the channel closed with the error sync threw');
  assert.is(outcome, 'rejected: receiver setup failed');
});

test('an answer that cannot be encoded (data over MAX_WRITE) fails the request instead of leaving it pending and the rejection unhandled', async () => {
  // Real triggers: `sums` of a file over 8 GiB (> 131072 SHA-256 sums of 64 KiB blocks = over MAX_WRITE bytes), or a
  // `manifest` / `pass` body over MAX_CTL_JSON (a tree of ~75k files). encode() throws a BugError inside the
  // handler's `.then` success callback in CtlPeer.onFrame: nothing catches it.
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  const { client, server } = peers();
  try {
    server.serve(async () => ({ body: { n: 1 }, data: Buffer.alloc(MAX_WRITE + 1) }));
    const outcome = await Promise.race([
      client.request({ op: 'sums', dir: 0, path: 'big' }).then(() => 'resolved', (e: Error) => `rejected: ${e.message}`),
      new Promise<string>((r) => setTimeout(() => r('still pending after 1 s'), 1000)),
    ]);
    await tick();
    // expected: { unhandled: [], requester: 'rejected: …' }
    assert.equal({ unhandled: unhandled.map((e) => (e as Error).message), requester: outcome.replace(/^rejected: .*/, 'rejected') },
      { unhandled: [], requester: 'rejected' }, 'no unhandled rejection (it ends the daemon), and the requester learns the request failed');
  } finally {
    process.off('unhandledRejection', onUnhandled);
    client.close();
  }
});

test.run();
