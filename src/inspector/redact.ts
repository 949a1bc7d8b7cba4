/**
 * What the inspector may see: a copy of each inspection event with secret-looking keys and
 * sealed secrets redacted (context, events, the snapshot and the machine definition alike), cut
 * to a size the relay accepts. Pure; the relay (relay.ts) applies it to every event.
 */
import type { StatelyInspectionEvent } from '@statelyai/inspect';
import { isSealed, REDACTED_SECRET } from '../secrets/sealed.js';

/** The largest message the relay accepts. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
const REDACTED = '[redacted]';
const SECRET_KEY = /token|secret|password|authorization|cookie|api[_-]?key/i;
// An event the relay would reject (maxPayload) closes the adapter's socket for good: it only
// reconnects after errors, not after a close. Keep well under the limit.
const MAX_EVENT_BYTES = MAX_PAYLOAD_BYTES / 2;
// Same as the stock adapter's serializationDepthLimit default.
const MAX_DEPTH = 10;

/**
 * A deep copy of `value` in which the value of every key matching
 * /token|secret|password|authorization|cookie|api[_-]?key/i is "[redacted]", and every sealed
 * secret (a run's secret input or answer, src/secrets/sealed.ts) is "***" whatever its key.
 * Plain objects and arrays are copied (cycles and shared references are reproduced in the
 * copy); anything else (class instances, Map, Date, …) is returned as is. A key whose value is
 * null or undefined keeps it: that a secret is unset is not itself secret.
 */
export function redactSecrets<T>(value: T): T {
  return redactValue(value, new Map()) as T;
}

function redactValue(value: unknown, copies: Map<object, unknown>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const existing = copies.get(value);
  if (existing !== undefined) return existing;
  if (isSealed(value)) return REDACTED_SECRET;
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    copies.set(value, copy);
    for (const item of value) copy.push(redactValue(item, copies));
    return copy;
  }
  if (!isPlainObject(value)) return value;
  const copy: Record<PropertyKey, unknown> = Object.create(Object.getPrototypeOf(value));
  copies.set(value, copy);
  for (const key of Reflect.ownKeys(value)) {
    if (!Object.prototype.propertyIsEnumerable.call(value, key)) continue;
    const item = (value as Record<PropertyKey, unknown>)[key];
    copy[key] =
      typeof key === 'string' && SECRET_KEY.test(key) && item !== null && item !== undefined
        ? REDACTED
        : redactValue(item, copies);
  }
  return copy;
}

function isPlainObject(value: object): value is Record<PropertyKey, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * JSON-shaped data as the adapter would send it (toJSON honoured, functions as `{ type: name }`
 * like the stock replacer), so redaction sees exactly what leaves, not live objects whose
 * fields it cannot copy.
 */
function toJsonData(value: unknown, key: string, ancestors: object[]): unknown {
  let current = value;
  if (current !== null && typeof current === 'object' && 'toJSON' in current) {
    const toJSON: unknown = current.toJSON;
    if (typeof toJSON === 'function') {
      try {
        current = toJSON.call(current, key);
      } catch {
        return '[unserializable]';
      }
    }
  }
  switch (typeof current) {
    case 'string':
    case 'boolean':
      return current;
    case 'number':
      return Number.isFinite(current) ? current : null;
    case 'bigint':
      return current.toString();
    case 'function':
      return { type: current.name };
    case 'undefined':
    case 'symbol':
      return undefined;
  }
  if (current === null || typeof current !== 'object') return null;
  if (ancestors.includes(current)) return '[Circular]';
  if (ancestors.length >= MAX_DEPTH) return Array.isArray(current) ? '[Array]' : '[Object]';
  ancestors.push(current);
  try {
    if (Array.isArray(current)) {
      return current.map((item, index) => toJsonData(item, String(index), ancestors) ?? null);
    }
    const out: Record<string, unknown> = {};
    for (const childKey of Object.keys(current)) {
      let child: unknown;
      try {
        child = (current as Record<string, unknown>)[childKey];
      } catch {
        continue;
      }
      const converted = toJsonData(child, childKey, ancestors);
      if (converted !== undefined) out[childKey] = converted;
    }
    return out;
  } finally {
    ancestors.pop();
  }
}

// In a machine definition the keys of these maps are state, event and delay names, not data:
// redacting `on: { SET_TOKEN: … }` would only break the diagram.
const NAME_MAPS = new Set(['states', 'on', 'after']);

function redactDefinitionNode(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(redactDefinitionNode);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (NAME_MAPS.has(key) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const names: Record<string, unknown> = {};
      for (const [name, child] of Object.entries(value)) names[name] = redactDefinitionNode(child);
      out[key] = names;
    } else if (SECRET_KEY.test(key) && value !== null && value !== undefined) {
      out[key] = REDACTED;
    } else {
      // Context, params, input, meta…: ordinary data, no exemptions below this point.
      out[key] = redactSecrets(value);
    }
  }
  return out;
}

function redactDefinition(definition: string): string | undefined {
  try {
    return JSON.stringify(redactDefinitionNode(JSON.parse(definition)));
  } catch {
    // Unparseable means unverifiable: drop it rather than send it unchecked.
    return undefined;
  }
}

/** State values hold only state names, which the UI needs verbatim. */
function isStateValue(value: unknown): boolean {
  if (typeof value === 'string') return true;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.values(value).every(isStateValue);
}

function byteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '');
}

const OMITTED = '[omitted: too large for the inspector]';

/**
 * Runs on every event before it reaches the adapter (and again on events the adapter held back
 * while connecting, so it must be idempotent). `sanitizeContext` / `sanitizeEvent` only cover
 * context and events; the machine definition and the rest of the snapshot can carry secrets too
 * (a static `context: { token }` is in the definition).
 */
export function sanitizeInspectionEvent(event: StatelyInspectionEvent): StatelyInspectionEvent {
  const data = toJsonData(event, '', []);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return event;
  const { definition, snapshot, ...rest } = data as Record<string, unknown>;
  const out = redactSecrets(rest);
  if (typeof definition === 'string') {
    const redacted = redactDefinition(definition);
    if (redacted !== undefined) out.definition = redacted;
  }
  if (snapshot !== null && typeof snapshot === 'object' && !Array.isArray(snapshot)) {
    const { value, ...snapshotRest } = snapshot as Record<string, unknown>;
    const redacted = redactSecrets(snapshotRest);
    if (value !== undefined) redacted.value = isStateValue(value) ? value : redactSecrets(value);
    out.snapshot = redacted;
  } else if (snapshot !== undefined) {
    out.snapshot = redactSecrets(snapshot);
  }
  shrinkToFit(out);
  return out as unknown as StatelyInspectionEvent;
}

/** Gives up the least useful parts first: bulky data, then the diagram, then the snapshot. */
function shrinkToFit(out: Record<string, unknown>): void {
  if (byteLength(out) <= MAX_EVENT_BYTES) return;
  const snapshot = out.snapshot as Record<string, unknown> | undefined;
  if (snapshot !== undefined) {
    for (const key of ['context', 'output', 'error', 'children', 'historyValue']) {
      if (key in snapshot) snapshot[key] = OMITTED;
    }
  }
  if (out.event !== null && typeof out.event === 'object') {
    const type = (out.event as { type?: unknown }).type;
    out.event = { type: typeof type === 'string' ? type : 'unknown', omitted: OMITTED };
  }
  if (byteLength(out) <= MAX_EVENT_BYTES) return;
  delete out.definition;
  if (byteLength(out) <= MAX_EVENT_BYTES) return;
  if (snapshot !== undefined) out.snapshot = { status: snapshot.status, value: OMITTED };
}
