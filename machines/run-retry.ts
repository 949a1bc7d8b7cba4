/**
 * The run machine's retry rules, pure: whether a failed attempt is retried (the step's `retry:`
 * policy, see docs/workflows.md#retries), how long the run waits before the next attempt, and
 * how a failure names its attempt. No I/O, no clock.
 */
import type { RetryPolicy } from '../src/workflow/definition.js';
import type { StepOutcome } from './run-types.js';

/** The most attempts a step with this policy makes: the first one plus `limit` retries. */
export const maxAttempts = (policy: RetryPolicy): number => policy.limit + 1;

/** Whether `on` covers this outcome. A cancelled attempt or one that could not start never is. */
export function retriesOutcome(policy: RetryPolicy, outcome: StepOutcome): boolean {
  switch (outcome.kind) {
    case 'exited':
      return (
        outcome.exitCode !== 0 && (policy.on.anyFailure || policy.on.exitCodes.includes(outcome.exitCode))
      );
    case 'signalled':
      return policy.on.anyFailure;
    case 'timed_out':
      return policy.on.timeout;
    case 'spawn_failed':
    case 'cancelled':
      return false;
  }
}

/** Whether attempt `attempt`, ended with `outcome`, is followed by another one. */
export function shouldRetry(
  policy: RetryPolicy | null | undefined,
  attempt: number,
  outcome: StepOutcome,
): boolean {
  return policy != null && attempt < maxAttempts(policy) && retriesOutcome(policy, outcome);
}

/** The wait after failed attempt `attempt` (1, 2, …): delay × backoff^(attempt − 1), at most max_delay. */
export function retryWaitMs(policy: RetryPolicy, attempt: number): number {
  const wait = policy.delayMs * policy.backoff ** Math.max(0, attempt - 1);
  return Math.round(Math.min(wait, policy.maxDelayMs));
}

/**
 * ` (attempt 2 of 4)`, appended to the failure of a step that has retries, so the reason says how
 * far it got; an attempt past the limit (re-run after restarts, `retry_on_restart`) says so.
 */
export function attemptSuffix(policy: RetryPolicy | null | undefined, attempt: number): string {
  if (policy == null) return '';
  const most = maxAttempts(policy);
  return attempt <= most
    ? ` (attempt ${attempt} of ${most})`
    : ` (attempt ${attempt}, more than the ${most} retry allows)`;
}
