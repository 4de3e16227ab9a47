// eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
type Listener = (...args: any[]) => void;

/** What listens: a client of any library (an EventEmitter). */
interface Emitter {
  on(event: string, listener: Listener): unknown;
  off(event: string, listener: Listener): unknown;
}

/**
 * The listeners a store hangs on a client it was given (the client outlives the store):
 * `hook` registers one until its `off()` or `close()`; `add` keeps any other undo for `close()`.
 */
export function listeners(emitter: Emitter) {
  const undo: (() => void)[] = [];
  return {
    hook(event: string, fn: Listener): () => void {
      emitter.on(event, fn);
      const off = () => {
        emitter.off(event, fn);
        const k = undo.indexOf(off);
        if (k !== -1) undo.splice(k, 1);
      };
      undo.push(off);
      return off;
    },
    add(off: () => void): void {
      undo.push(off);
    },
    close(): void {
      for (const u of undo.splice(0)) u();
    },
  };
}
