/**
 * The one way tests wait for something that happens on its own (another process, a socket, a timer
 * in the code under test): poll a condition until it holds, and FAIL with a clear message when it
 * does not within the timeout. Never a fixed sleep: time the code reads moves on the manual clock.
 *
 * @example
 * await waitFor(async () => (await jobsOf(env, 'x')).length === 1, { message: 'the job to be queued' });
 * const row = await waitFor(() => db('links').where({ id }).first(), { timeout: 2_000, message: 'the link row' });
 */
export interface WaitOptions {
  /** Milliseconds before giving up (default 5 000). */
  timeout?: number;
  /** What is awaited, for the failure message: "timed out after 5000 ms waiting for <message>". */
  message?: string;
  /** Milliseconds between checks (default 10). */
  interval?: number;
}

export class WaitTimeoutError extends Error {
  constructor(message: string, readonly lastError?: unknown) {
    super(message);
    this.name = 'WaitTimeoutError';
  }
}

/**
 * Resolves with the first truthy value `condition` returns. A condition that throws counts as "not
 * yet" (its last error is quoted in the timeout message), so an assertion can be polled too.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeout = opts.timeout ?? 5_000;
  const interval = opts.interval ?? 10;
  const started = Date.now();
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const waited = Date.now() - started;
    if (waited >= timeout) {
      const why = lastError instanceof Error ? ` (last check threw: ${lastError.message})` : lastError !== undefined ? ` (last check threw: ${String(lastError)})` : '';
      throw new WaitTimeoutError(`timed out after ${timeout} ms waiting for ${opts.message ?? 'a condition'}${why}`, lastError);
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, timeout - waited)));
  }
}
