import { MessageChannel, type MessagePort, receiveMessageOnPort } from 'node:worker_threads';

/**
 * A synchronous call from a worker thread to an asynchronous handler on the main thread.
 *
 * The worker posts the request on a MessagePort and sleeps in Atomics.wait on a SharedArrayBuffer; the main thread
 * runs the handler (it may await anything), posts the answer, then bumps the shared sequence number and calls
 * Atomics.notify. The worker wakes and takes the answer with receiveMessageOnPort, so its own event loop never has
 * to run (it is blocked in /dev/fuse reads).
 *
 * Contract:
 * - Calls (and posts) from one worker are handled strictly one after the other, in order: a handler starts when the
 *   previous one settled. After a timeout the worker moves on and the late answer is discarded; its next call is
 *   handled once the late handler settled.
 * - The main thread must keep its event loop free: a main thread blocked on the worker (synchronous I/O on the FUSE
 *   mount) deadlocks. A handler that needs the libuv threadpool (fs.promises, dns.lookup) can starve when the same
 *   process also keeps pool threads busy with I/O on the mount.
 * - `close()` releases a waiting worker at once: its call throws.
 */
export interface WorkerEnd {
  port: MessagePort;
  /**
   * Int32Array view: [0] sequence number of the last answered call, [1] 1 once closed, [2] posts not yet handled,
   * [3] a flag the main thread sets for the worker (sink-bridge.ts: stream writes)
   */
  sab: SharedArrayBuffer;
}

interface CallMsg<Req> {
  seq: number;
  req: Req;
}
interface AnswerMsg<Res> {
  seq: number;
  ok: boolean;
  value?: Res;
  message?: string;
}

export interface BlockingServer {
  /** hand this to the worker (in workerData, with `port` in the transfer list) */
  readonly workerEnd: WorkerEnd;
  close(): void;
  /** sets the shared flag the worker reads with `BlockingCaller.flag()` */
  setFlag(on: boolean): void;
  /** resolves once every post received so far (and every one the worker made before) has been handled */
  drained(): Promise<void>;
}

/**
 * Main-thread side. `handler` may be async; its rejection becomes a thrown Error in the worker (for a post, it goes
 * to `onPostError`). Calls and posts are handled strictly one after the other, in the order the worker made them.
 */
export function serveBlockingCalls<Req, Res>(
  handler: (req: Req) => Res | Promise<Res>, onPostError: (e: unknown) => void = () => {},
): BlockingServer {
  const { port1, port2 } = new MessageChannel();
  const sab = new SharedArrayBuffer(16);
  const state = new Int32Array(sab);
  let closed = false;
  const answer = (msg: AnswerMsg<Res>) => {
    if (closed) return;
    port1.postMessage(msg);
    if (msg.seq > Atomics.load(state, 0)) Atomics.store(state, 0, msg.seq);
    Atomics.notify(state, 0);
  };
  let tail: Promise<unknown> = Promise.resolve();
  port1.on('message', (m: CallMsg<Req>) => {
    const run = tail.then(() => handler(m.req));
    tail = run.catch(() => {});
    if (m.seq === 0) {
      run.then(() => Atomics.sub(state, 2, 1), (err: unknown) => {
        Atomics.sub(state, 2, 1);
        onPostError(err);
      });
      return;
    }
    run.then(
      (value) => answer({ seq: m.seq, ok: true, value }),
      (err: unknown) => answer({ seq: m.seq, ok: false, message: err instanceof Error ? err.message : String(err) }),
    );
  });
  return {
    setFlag(on) {
      Atomics.store(state, 3, on ? 1 : 0);
    },
    async drained() {
      while (!closed && Atomics.load(state, 2) > 0) await new Promise((r) => setTimeout(r, 1));
    },
    workerEnd: { port: port2, sab },
    close() {
      if (closed) return;
      closed = true;
      Atomics.store(state, 1, 1);
      Atomics.notify(state, 0);
      port1.close();
    },
  };
}

export class BlockingCallError extends Error {
  override readonly name = 'BlockingCallError';
}

/** Worker side: `call` blocks the calling thread until the main thread answers, the timeout passes, or close. */
export class BlockingCaller<Req, Res> {
  private seq = 0;
  private readonly state: Int32Array;
  constructor(private readonly end: WorkerEnd, private readonly timeoutMs = 0) {
    this.state = new Int32Array(end.sab);
  }

  call(req: Req, transfer: ArrayBuffer[] = []): Res {
    return this.wait(this.begin(req, transfer));
  }

  /** Sends a request without waiting for it: the main thread handles it in order; nothing comes back. */
  post(req: Req, transfer: ArrayBuffer[] = []): void {
    if (Atomics.load(this.state, 1) === 1) throw new BlockingCallError('main thread closed the channel');
    Atomics.add(this.state, 2, 1);
    this.end.port.postMessage({ seq: 0, req } satisfies CallMsg<Req>, transfer);
  }

  /** posts not yet handled by the main thread */
  posted(): number {
    return Atomics.load(this.state, 2);
  }

  flag(): boolean {
    return Atomics.load(this.state, 3) === 1;
  }

  /** First half of `call`: sends the request; `wait(seq)` blocks for its answer (at most one outstanding). */
  begin(req: Req, transfer: ArrayBuffer[] = []): number {
    const seq = ++this.seq;
    if (Atomics.load(this.state, 1) === 1) throw new BlockingCallError('main thread closed the channel');
    this.end.port.postMessage({ seq, req } satisfies CallMsg<Req>, transfer);
    return seq;
  }

  wait(seq: number): Res {
    const deadline = this.timeoutMs > 0 ? Date.now() + this.timeoutMs : Infinity;
    for (;;) {
      if (Atomics.load(this.state, 1) === 1) throw new BlockingCallError('main thread closed the channel');
      const done = Atomics.load(this.state, 0);
      if (done >= seq) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new BlockingCallError(`main thread did not answer within ${this.timeoutMs} ms`);
      Atomics.wait(this.state, 0, done, left === Infinity ? undefined : left);
    }
    for (;;) {
      const got = receiveMessageOnPort(this.end.port) as { message: AnswerMsg<Res> } | undefined;
      if (!got) throw new BlockingCallError(`answer ${seq} signalled but not delivered`);
      if (got.message.seq < seq) continue; // a late answer to a call that timed out
      if (!got.message.ok) throw new BlockingCallError(got.message.message ?? 'main thread handler failed');
      return got.message.value as Res;
    }
  }
}
