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
 * - Calls from one worker are sequential; the handler sees them in order. After a timeout the worker moves on and
 *   the late answer is discarded.
 * - The main thread must keep its event loop free: a main thread blocked on the worker (synchronous I/O on the FUSE
 *   mount) deadlocks. A handler that needs the libuv threadpool (fs.promises, dns.lookup) can starve when the same
 *   process also keeps pool threads busy with I/O on the mount.
 * - `close()` releases a waiting worker at once: its call throws.
 */
export interface WorkerEnd {
  port: MessagePort;
  /** Int32Array view: [0] sequence number of the last answered call, [1] 1 once closed */
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
}

/** Main-thread side. `handler` may be async; its rejection becomes a thrown Error in the worker. */
export function serveBlockingCalls<Req, Res>(handler: (req: Req) => Res | Promise<Res>): BlockingServer {
  const { port1, port2 } = new MessageChannel();
  const sab = new SharedArrayBuffer(8);
  const state = new Int32Array(sab);
  let closed = false;
  const answer = (msg: AnswerMsg<Res>) => {
    if (closed) return;
    port1.postMessage(msg);
    if (msg.seq > Atomics.load(state, 0)) Atomics.store(state, 0, msg.seq);
    Atomics.notify(state, 0);
  };
  port1.on('message', (m: CallMsg<Req>) => {
    Promise.resolve()
      .then(() => handler(m.req))
      .then(
        (value) => answer({ seq: m.seq, ok: true, value }),
        (err: unknown) => answer({ seq: m.seq, ok: false, message: err instanceof Error ? err.message : String(err) }),
      );
  });
  return {
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
    const seq = ++this.seq;
    if (Atomics.load(this.state, 1) === 1) throw new BlockingCallError('main thread closed the channel');
    this.end.port.postMessage({ seq, req } satisfies CallMsg<Req>, transfer);
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
