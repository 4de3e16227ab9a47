/**
 * Waits for `work`, but no longer than `ms`: past that, settles with what `onTimeout` returns,
 * or rejects with what it throws. The timer is cleared as soon as either side settles, so a
 * `work` that finishes in time leaves nothing behind; a `work` that never settles keeps the
 * process alive until the timer fires, no longer. `work` itself is not cancelled.
 */
export async function withTimeout<T, F>(work: T | PromiseLike<T>, ms: number, onTimeout: () => F): Promise<Awaited<T> | F> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<F>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}
