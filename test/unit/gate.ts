/**
 * A point where a test holds something (a sink's request, a daemon's answer) until the test opens it: `reached`
 * resolves when the held side first waits there (`pass()`), and `pass()` resolves when the test calls `open()`.
 * Whatever completes while the gate is closed reads `isOpen` false: that proves it did not wait for what the gate
 * holds, without timing anything.
 */
export function gate() {
  let reach!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => { reach = r; });
  const released = new Promise<void>((r) => { release = r; });
  const g = { isOpen: false, reached, pass: () => { reach(); return released; }, open: () => { g.isOpen = true; release(); } };
  return g;
}
