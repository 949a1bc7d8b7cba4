import { request } from 'node:http';
import { connect } from 'node:net';
import { createWebSocketReceiver, type StatelyInspectionEvent } from '@statelyai/inspect';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { assign, createActor, setup } from 'xstate';
import { redactSecrets } from '../../src/inspector/redact.js';
import { type InspectorRelay, startInspectorRelay } from '../../src/inspector/relay.js';
import { waitUntil } from '../support/wait.js';

const SECRET = 'tok-SECRET-123';
const DEADLINE_MS = 5_000;

const relays: InspectorRelay[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
});

async function startRelay(): Promise<InspectorRelay> {
  const relay = await startInspectorRelay({ port: 0 });
  relays.push(relay);
  return relay;
}

const waitFor = (predicate: () => boolean, what: string) => waitUntil(predicate, DEADLINE_MS, what);

function httpGet(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the HTTP status of a refused upgrade, or 101 if it was accepted. */
function wsStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.terminate();
    });
    ws.on('error', (error) => reject(error));
  });
}

function tcpConnects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const toggleMachine = setup({
  types: {
    context: {} as { gatewayToken: string; count: number },
    events: {} as { type: 'TOGGLE' },
  },
}).createMachine({
  id: 'toggle',
  context: { gatewayToken: SECRET, count: 0 },
  initial: 'off',
  states: {
    off: { on: { TOGGLE: { target: 'on', actions: assign({ count: ({ context }) => context.count + 1 }) } } },
    on: { on: { TOGGLE: { target: 'off' } } },
  },
});

describe('inspector relay', () => {
  it('relays actor, event and snapshot inspection events, with secrets redacted', async () => {
    const relay = await startRelay();
    const actor = createActor(toggleMachine, { inspect: relay.inspect, systemId: 'daemon' }).start();
    cleanups.push(() => actor.stop());
    actor.send({ type: 'TOGGLE' });
    expect(actor.getSnapshot().value).toBe('on');

    // Connects after the actor started: the replay must deliver what it missed.
    const received: StatelyInspectionEvent[] = [];
    const subscription = createWebSocketReceiver({ server: relay.socketUrl }).subscribe((event) => {
      received.push(event);
    });
    cleanups.push(() => subscription.unsubscribe());

    const rootActor = () =>
      received.find((e) => e.type === '@xstate.actor' && e.sessionId === actor.sessionId);
    const toggleEvent = () =>
      received.find(
        (e) => e.type === '@xstate.event' && e.sessionId === actor.sessionId && e.event.type === 'TOGGLE',
      );
    const onSnapshot = () =>
      received.find(
        (e) =>
          e.type === '@xstate.snapshot' &&
          e.sessionId === actor.sessionId &&
          e.event.type === 'TOGGLE' &&
          (e.snapshot as { value?: unknown }).value === 'on',
      );
    await waitFor(() => !!rootActor() && !!toggleEvent() && !!onSnapshot(), 'actor, event and snapshot');

    const actorEvent = rootActor();
    expect(actorEvent?.type === '@xstate.actor' && actorEvent.parentId).toBeFalsy();
    const snapshot = onSnapshot();
    expect(
      snapshot?.type === '@xstate.snapshot' && (snapshot.snapshot as { context?: unknown }).context,
    ).toEqual({
      gatewayToken: '[redacted]',
      count: 1,
    });
    expect(JSON.stringify(received)).not.toContain(SECRET);
    // The diagram still has its state and event names.
    expect(actorEvent?.type === '@xstate.actor' && actorEvent.definition).toContain('TOGGLE');
  });

  it('serves the page only with the token', async () => {
    const relay = await startRelay();
    const page = await httpGet(relay.pageUrl);
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('<iframe id="inspector"');
    expect(page.body).toContain('src="https://stately.ai/inspect"');
    expect(page.body).toContain(JSON.stringify(relay.socketUrl));

    const base = `http://127.0.0.1:${relay.port}/`;
    expect((await httpGet(base)).status).toBe(403);
    expect((await httpGet(`${base}?token=wrong`)).status).toBe(403);
    const token = new URL(relay.pageUrl).searchParams.get('token') ?? '';
    expect((await httpGet(`${base}?token=${token.slice(0, -1)}x`)).status).toBe(403);
  });

  it('refuses WebSocket upgrades without the right token', async () => {
    const relay = await startRelay();
    const base = `ws://127.0.0.1:${relay.port}/relay`;
    expect(await wsStatus(base)).toBe(403);
    expect(await wsStatus(`${base}?token=wrong`)).toBe(403);
    expect(await wsStatus(relay.socketUrl)).toBe(101);
  });

  it('broadcasts to the other clients and replays to late joiners', async () => {
    const relay = await startRelay();
    const open = (): Promise<{ ws: WebSocket; messages: string[] }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(relay.socketUrl);
        const messages: string[] = [];
        ws.on('message', (data) => messages.push(String(data)));
        ws.on('error', reject);
        ws.on('open', () => resolve({ ws, messages }));
      });
    const a = await open();
    const b = await open();
    cleanups.push(
      () => a.ws.terminate(),
      () => b.ws.terminate(),
    );
    a.ws.send('{"n":1}');
    await waitFor(() => b.messages.length === 1, 'the broadcast');
    const c = await open();
    cleanups.push(() => c.ws.terminate());
    await waitFor(() => c.messages.length === 1, 'the replay');
    expect(b.messages).toEqual(['{"n":1}']);
    expect(c.messages).toEqual(['{"n":1}']);
    expect(a.messages).toEqual([]);
  });

  it('listens on 127.0.0.1 and stops idempotently', async () => {
    const relay = await startRelay();
    expect(relay.port).toBeGreaterThan(0);
    expect(new URL(relay.pageUrl).hostname).toBe('127.0.0.1');
    expect(new URL(relay.socketUrl).hostname).toBe('127.0.0.1');
    expect(await tcpConnects(relay.port)).toBe(true);

    await relay.stop();
    await relay.stop();
    await Promise.all([relay.stop(), relay.stop()]);
    expect(await tcpConnects(relay.port)).toBe(false);
    expect(() => relay.inspect({ type: '@xstate.event' } as never)).not.toThrow();
  });

  it('rejects an invalid port or UI URL', async () => {
    await expect(startInspectorRelay({ port: 70_000 })).rejects.toThrow(RangeError);
    await expect(startInspectorRelay({ uiUrl: 'javascript:alert(1)' })).rejects.toThrow(TypeError);
  });
});

describe('redactSecrets', () => {
  it('redacts matching keys in nested objects and arrays', () => {
    const input = {
      name: 'ok',
      gatewayToken: 't',
      nested: { password: 'p', deeper: [{ api_key: 'k' }, { apiKey: 'k2', 'API-KEY': 'k3' }, 'plain'] },
      headers: { Authorization: 'Bearer x', Cookie: 'c', accept: 'json' },
      clientSecret: { any: 'shape' },
      refreshToken: null,
      list: [1, [2, { secret: 3 }]],
    };
    expect(redactSecrets(input)).toEqual({
      name: 'ok',
      gatewayToken: '[redacted]',
      nested: {
        password: '[redacted]',
        deeper: [{ api_key: '[redacted]' }, { apiKey: '[redacted]', 'API-KEY': '[redacted]' }, 'plain'],
      },
      headers: { Authorization: '[redacted]', Cookie: '[redacted]', accept: 'json' },
      clientSecret: '[redacted]',
      refreshToken: null,
      list: [1, [2, { secret: '[redacted]' }]],
    });
  });

  it('does not mutate its input', () => {
    const input = { token: 'a', inner: { password: 'b', items: [{ cookie: 'c' }] } };
    const before = structuredClone(input);
    const output = redactSecrets(input);
    expect(input).toEqual(before);
    expect(output).not.toBe(input);
    expect(output.inner).not.toBe(input.inner);
    expect(output.inner.items).not.toBe(input.inner.items);
  });

  it('handles cycles and shared references', () => {
    type Node = { name: string; token: string; self?: Node; children: Node[] };
    const root: Node = { name: 'root', token: 'x', children: [] };
    root.self = root;
    const child: Node = { name: 'child', token: 'y', children: [root] };
    root.children.push(child, child);

    const out = redactSecrets(root);
    expect(out).not.toBe(root);
    expect(out.token).toBe('[redacted]');
    expect(out.self).toBe(out);
    expect(out.children[0]).toBe(out.children[1]);
    expect(out.children[0]?.token).toBe('[redacted]');
    expect(out.children[0]?.children[0]).toBe(out);
    expect(root.token).toBe('x');
    expect(child.token).toBe('y');
  });

  it('passes primitives and non-plain objects through', () => {
    expect(redactSecrets('token')).toBe('token');
    expect(redactSecrets(42)).toBe(42);
    expect(redactSecrets(null)).toBeNull();
    const date = new Date(0);
    expect(redactSecrets({ when: date }).when).toBe(date);
  });
});
