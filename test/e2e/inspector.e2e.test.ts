/**
 * `start --inspect`: the real daemon streams its actors to the Stately inspector relay on
 * 127.0.0.1, and a receiver subscribed to the relay sees the root actor and its transitions.
 */
import { createWebSocketReceiver, type StatelyInspectionEvent } from '@statelyai/inspect';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StartJson } from '../../commands/start.js';
import type { StatusJson } from '../../commands/status.js';
import { assertBuilt, destroyProject, makeProject, parseJson, runCli, waitUntil } from '../support/cli.js';

const cleanups: (() => void)[] = [];
beforeAll(() => assertBuilt());
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

describe('charter-daemon start --inspect', () => {
  it('is off by default: no relay, nothing in status', async () => {
    const root = makeProject();
    cleanups.push(() => destroyProject(root));
    expect((await runCli(['start', '--project-path', root])).code).toBe(0);
    const status = parseJson<StatusJson>((await runCli(['status', '--json', '--project-path', root])).stdout);
    expect(status).toMatchObject({ running: true, inspector: null });
  });

  it('serves a token-guarded relay on 127.0.0.1 that shows the root actor and its transitions', async () => {
    const root = makeProject();
    cleanups.push(() => destroyProject(root));
    const start = await runCli(['start', '--inspect', '--json', '--project-path', root]);
    expect(start.code).toBe(0);
    const started = parseJson<StartJson>(start.stdout);
    expect(started.inspector_url).not.toBeNull();
    const page = new URL(started.inspector_url ?? '');
    expect(page.hostname).toBe('127.0.0.1');
    const token = page.searchParams.get('token');
    expect(token?.length).toBeGreaterThanOrEqual(20);

    // The human output says how to open it.
    const human = await runCli(['status', '--project-path', root]);
    expect(human.stdout).toContain(`inspector: ${started.inspector_url}`);

    const received: StatelyInspectionEvent[] = [];
    const socketUrl = `ws://127.0.0.1:${page.port}/relay?token=${token}`;
    const subscription = createWebSocketReceiver({ server: socketUrl }).subscribe((event) => {
      received.push(event);
    });
    cleanups.push(() => subscription.unsubscribe());

    // Replayed history: the root actor (no parent) and its move to serving.
    const rootActor = () => received.find((e) => e.type === '@xstate.actor' && !e.parentId);
    await waitUntil(() => rootActor() !== undefined, 5000, 'the root actor');
    const rootSession = rootActor()?.sessionId;
    const snapshotValue = (value: string) =>
      received.some(
        (e) =>
          e.type === '@xstate.snapshot' &&
          e.sessionId === rootSession &&
          (e.snapshot as { value?: unknown }).value === value,
      );
    await waitUntil(() => snapshotValue('serving'), 5000, 'the root actor reaching serving');
    expect(received.some((e) => e.type === '@xstate.actor' && e.parentId === rootSession)).toBe(true);

    // Live: a status request is an event to the root.
    expect((await runCli(['status', '--project-path', root])).code).toBe(0);
    await waitUntil(
      () =>
        received.some(
          (e) =>
            e.type === '@xstate.event' && e.sessionId === rootSession && e.event.type === 'control.request',
        ),
      5000,
      'the control.request event',
    );

    // Without the token the relay refuses.
    const refused = await fetch(`http://127.0.0.1:${page.port}/`);
    expect(refused.status).toBe(403);
  });
});
