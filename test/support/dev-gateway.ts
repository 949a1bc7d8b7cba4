/**
 * A standalone charter.v1 gateway for development: runs a GatewayPeer on 127.0.0.1 and prints one
 * line per frame (time, direction, connection, op, short summary) so a person can watch a
 * daemon's traffic. Stops on SIGINT / SIGTERM.
 *
 *   node dist/test/support/dev-gateway.js [--port 8765] [--token dev-token] [--hb-ms 1000]
 *                                         [--base-path /base] [--credit 1000]
 */
import { parseArgs } from 'node:util';
import { type FrameRecord, GatewayPeer } from '../../src/gateway-server/gateway-peer.js';

const USAGE =
  'usage: dev-gateway [--port 8765] [--token dev-token] [--hb-ms 1000] [--base-path /base] [--credit 1000]';

function intOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed))
    throw new Error(`--${name} must be an integer, got ${JSON.stringify(value)}`);
  return parsed;
}

function clip(text: string, max = 60): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function field(frame: Record<string, unknown>, key: string): string {
  const value = frame[key];
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A short, human summary of one frame. */
function summarise(frame: unknown): string {
  if (typeof frame === 'string') return `raw ${JSON.stringify(clip(frame, 80))}`;
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) return clip(JSON.stringify(frame));
  const f = frame as Record<string, unknown>;
  if (typeof f.op !== 'string') return clip(JSON.stringify(f), 80);
  switch (f.op) {
    case 'hello': {
      const project = f.project as { name?: unknown } | undefined;
      return `hello daemon=${field(f, 'daemon_id')} epoch=${field(f, 'epoch')} v=${field(f, 'daemon_version')} project=${String(project?.name)} down_applied=${field(f, 'down_applied')}`;
    }
    case 'welcome':
      return `welcome conn=${field(f, 'conn_id')} hb_ms=${field(f, 'hb_ms')} max_frame=${field(f, 'max_frame')} up_committed=${field(f, 'up_committed')} up_limit=${field(f, 'up_limit')}`;
    case 'events': {
      const events = Array.isArray(f.events) ? (f.events as Record<string, unknown>[]) : [];
      const first = events[0];
      const last = events[events.length - 1];
      const types = [...new Set(events.map((e) => String(e.type)))].join(',');
      return `events n=${events.length} seq=${String(first?.seq)}..${String(last?.seq)} types=${clip(types, 50)}`;
    }
    case 'ack':
      return `ack up=${field(f, 'up')} up_limit=${field(f, 'up_limit')}`;
    case 'command':
      return `command dseq=${field(f, 'dseq')} ${field(f, 'kind')} cmd_id=${field(f, 'cmd_id')}${f.run_id === undefined ? '' : ` run=${field(f, 'run_id')}`} args=${clip(JSON.stringify(f.args), 40)}`;
    case 'cack':
      return `cack down=${field(f, 'down')}`;
    case 'ping':
    case 'pong':
      return `${f.op} t=${field(f, 't')}`;
    case 'error':
      return `error code=${field(f, 'code')} ${clip(field(f, 'message'), 80)}`;
    default:
      return `${clip(f.op, 20)} ${clip(JSON.stringify(f), 60)}`;
  }
}

function time(at: number): string {
  return new Date(at).toISOString().slice(11, 23);
}

function printFrame(record: FrameRecord): void {
  const arrow = record.dir === 'in' ? '→ in ' : '← out';
  console.log(`${time(record.at)} ${arrow} ${record.connId} ${summarise(record.frame)}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      token: { type: 'string' },
      'hb-ms': { type: 'string' },
      'base-path': { type: 'string' },
      credit: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(USAGE);
    return;
  }
  const token = values.token ?? 'dev-token';
  const peer = await GatewayPeer.start({
    port: intOption('port', values.port, 8765),
    token,
    hbMs: intOption('hb-ms', values['hb-ms'], 1000),
    basePath: values['base-path'] ?? '',
    initialCredit: intOption('credit', values.credit, 1000),
    onFrame: printFrame,
    onNote: (note) => console.log(`${time(Date.now())} ·     ${note}`),
  });
  console.log(`charter.v1 dev gateway listening: ${peer.url}  (endpoint ${peer.url}/v1/daemon)`);
  console.log(`give a daemon --gateway ${peer.url} and the token ${JSON.stringify(token)}; Ctrl-C stops`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      console.log(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    console.log(
      `${signal}: stopping (stored ${peer.storedMax()} events, ${peer.connections.length} connection(s))`,
    );
    peer.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  console.error(USAGE);
  process.exit(2);
});
