/**
 * Secrets at rest and in every shape that leaves the engine: the key file and the cipher, sealed
 * envelopes in the store (never in events, `***` in `runs show`), the environment a step
 * inherits, `type: secret` checking, the inspector, and the log's redaction by value.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors/charter-error.js';
import { readCommand, sealForInbox } from '../../src/gateway/command-frame.js';
import { redactSecrets } from '../../src/inspector/redact.js';
import { createDaemonLogger } from '../../src/logging/logger.js';
import { LiveSecrets } from '../../src/secrets/live-secrets.js';
import { answerAad, inputAad, openInputs, sealSecretFields } from '../../src/secrets/seal-values.js';
import { isSealed } from '../../src/secrets/sealed.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { Store } from '../../src/store/store.js';
import type { FieldSpec } from '../../src/workflow/definition.js';
import { loadWorkflow } from '../../src/workflow/load.js';
import { buildStepEnv } from '../../src/workflow/step-env.js';
import { checkAnswers, coerceInputs } from '../../src/workflow/values.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cds-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const SECRET: FieldSpec = { type: 'secret', required: true, description: null, values: null };
const TEXT: FieldSpec = { type: 'string', required: false, description: null, values: null };

describe('SecretBox', () => {
  it('creates a 0600 key file at the first seal, and opens what it sealed', () => {
    const dir = tempDir();
    const keyPath = join(dir, 'secrets.key');
    const box = new SecretBox(keyPath);
    const sealed = box.seal('hunter2!', 'run:r1:inputs.password');
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(sealed)).not.toContain('hunter2!');
    expect(isSealed(sealed)).toBe(true);
    // Another daemon process (a restart) reads the same key.
    expect(new SecretBox(keyPath).open(sealed, 'run:r1:inputs.password')).toBe('hunter2!');
    // A fresh IV each time.
    expect(box.seal('hunter2!', 'a')).not.toEqual(box.seal('hunter2!', 'a'));
  });

  it('refuses a value moved to another place', () => {
    const box = new SecretBox(join(tempDir(), 'secrets.key'));
    const sealed = box.seal('hunter2!', inputAad('r1', 'password'));
    expect(() => box.open(sealed, inputAad('r2', 'password'))).toThrow(/does not decrypt/);
  });

  it('never creates a key to open with: a missing key file is a clear SECRETS_UNAVAILABLE', () => {
    const dir = tempDir();
    const keyPath = join(dir, 'secrets.key');
    const sealed = new SecretBox(keyPath).seal('hunter2!', answerAad('r1', 'ask', 'code'));
    rmSync(keyPath);
    let error: unknown;
    try {
      new SecretBox(keyPath).open(sealed, answerAad('r1', 'ask', 'code'));
    } catch (caught) {
      error = caught;
    }
    expect(hasCode(error, 'SECRETS_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toMatch(/secrets\.key is missing/);
    expect((error as Error).message).not.toContain('hunter2!');
    expect(() => statSync(keyPath)).toThrow();
  });

  it('names another key, and a damaged key file', () => {
    const dir = tempDir();
    const keyPath = join(dir, 'secrets.key');
    const sealed = new SecretBox(keyPath).seal('hunter2!', 'x');
    rmSync(keyPath);
    new SecretBox(keyPath).seal('other', 'y'); // a new key now
    expect(() => new SecretBox(keyPath).open(sealed, 'x')).toThrow(/encrypted with key .* holds key/);
    writeFileSync(keyPath, 'garbage\n');
    expect(() => new SecretBox(keyPath).open(sealed, 'x')).toThrow(/damaged/);
  });
});

describe('sealing by spec', () => {
  it('seals only the secret fields, and opens them for the step', () => {
    const box = new SecretBox(join(tempDir(), 'secrets.key'));
    const sealed = sealSecretFields(
      { password: SECRET, note: TEXT },
      { password: 'pw-1234', note: 'hi' },
      box,
      (n) => inputAad('r1', n),
    );
    expect(sealed.note).toBe('hi');
    expect(isSealed(sealed.password)).toBe(true);
    expect(openInputs('r1', sealed, box)).toEqual({
      values: { password: 'pw-1234', note: 'hi' },
      secrets: ['pw-1234'],
    });
  });
});

describe('the store keeps envelopes, and shows ***', () => {
  it('redacts envelopes in events and in runs show, keeps them in the run record', () => {
    const dir = tempDir();
    const store = Store.open(join(dir, 'state.db'));
    cleanups.unshift(() => store.close());
    const box = new SecretBox(join(dir, 'secrets.key'));
    const inputs = { password: box.seal('pw-1234', inputAad('r1', 'password')), note: 'hi' };
    store.runs.createRun(
      { runId: 'r1', workflowId: 'wf', inputs, steps: [{ id: 'ask', kind: 'input' }] },
      { type: 'run.queued', data: { workflow_id: 'wf', inputs } },
    );
    const answers = { ask: { code: box.seal('c0de-42', answerAad('r1', 'ask', 'code')) } };
    store.runs.record('r1', { answers }, [
      { type: 'input.submitted', data: { step_id: 'ask', answers: answers.ask } },
    ]);

    const events = store.runs.events('r1', 0, 10);
    expect(events.map((e) => e.data)).toEqual([
      { workflow_id: 'wf', inputs: { password: '***', note: 'hi' } },
      { step_id: 'ask', answers: { code: '***' } },
    ]);
    expect(store.runs.get('r1')).toMatchObject({
      inputs: { password: '***', note: 'hi' },
      answers: { ask: { code: '***' } },
    });
    const record = store.runs.getRecord('r1');
    expect(isSealed(record?.inputs.password)).toBe(true);
    expect(isSealed(record?.answers.ask?.code)).toBe(true);
  });
});

describe('a step environment', () => {
  const base = {
    PATH: '/usr/bin:/bin',
    HOME: '/home/x',
    LANG: 'C.UTF-8',
    LC_TIME: 'C',
    CHARTER_GATEWAY_TOKEN: 'tok-very-secret',
    CHARTER_GATEWAY_URL: 'http://gw',
    CHARTER_DAEMON_CRASH_AT: 'x',
    AWS_PROFILE: 'dev',
  };
  const input = (mode: 'inherit' | 'minimal') =>
    buildStepEnv({
      projectRoot: '/p',
      runId: 'r1',
      workflowId: 'wf',
      inputs: { password: 'pw-1234' },
      answers: {},
      stepEnv: { EXTRA: '1' },
      contextFile: '/p/ctx.json',
      baseEnv: base,
      mode,
    });

  it('inherit: everything but the daemon own CHARTER_* variables', () => {
    const env = input('inherit');
    expect(env.CHARTER_GATEWAY_TOKEN).toBeUndefined();
    expect(env.CHARTER_GATEWAY_URL).toBeUndefined();
    expect(env.CHARTER_DAEMON_CRASH_AT).toBeUndefined();
    expect(env).toMatchObject({
      AWS_PROFILE: 'dev',
      PATH: '/usr/bin:/bin',
      CHARTER_INPUT_PASSWORD: 'pw-1234',
      EXTRA: '1',
    });
  });

  it('minimal: the allow-list and the run variables only', () => {
    expect(input('minimal')).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/home/x',
      LANG: 'C.UTF-8',
      LC_TIME: 'C',
      CHARTER_RUN_ID: 'r1',
      CHARTER_WORKFLOW_ID: 'wf',
      CHARTER_PROJECT_ROOT: '/p',
      CHARTER_INPUT_PASSWORD: 'pw-1234',
      CHARTER_CONTEXT: '/p/ctx.json',
      EXTRA: '1',
    });
  });
});

describe('type: secret', () => {
  it('is a non-empty string, and its value is never echoed in a problem', () => {
    expect(coerceInputs({ password: SECRET }, { password: 'pw-1234' })).toEqual({
      ok: true,
      value: { password: 'pw-1234' },
    });
    const refused = coerceInputs({ password: SECRET, other: SECRET }, { password: '', other: 123456789 });
    expect(refused).toEqual({
      ok: false,
      problems: ['password: a secret must not be empty', 'other: expected a string (a secret), got a number'],
    });
    expect(checkAnswers({ code: SECRET }, {})).toEqual({ ok: false, problems: ['code: required'] });
  });

  it('is accepted in manifest.yml and plan.yml, and refuses a default', () => {
    const root = tempDir();
    const dir = join(root, 'workflows', 'wf');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'manifest.yml'),
      'id: wf\nname: W\ninputs:\n  password: { type: secret, required: true }\n',
    );
    writeFileSync(
      join(dir, 'plan.yml'),
      'steps:\n  - id: ask\n    input: { prompt: Code?, fields: { code: { type: secret } } }\n',
    );
    const workflow = loadWorkflow(root, 'wf');
    expect(workflow.inputs.password?.type).toBe('secret');
    writeFileSync(
      join(dir, 'manifest.yml'),
      'id: wf\nname: W\ninputs:\n  password: { type: secret, default: hunter2! }\n',
    );
    let message = '';
    try {
      loadWorkflow(root, 'wf');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('inputs.password.default: a secret cannot have a default');
    expect(message).not.toContain('hunter2!');
  });
});

describe('gateway commands in the inbox', () => {
  it('a command that cannot be sealed is kept as rejected, without its values', () => {
    const read = readCommand({
      op: 'command',
      dseq: 1,
      cmd_id: 'c1',
      kind: 'run.start',
      args: { workflow_id: 'wf', inputs: { password: 'pw-1234' } },
    });
    const sealed = sealForInbox(read, () => {
      throw new Error('cannot create the key file');
    });
    expect(sealed).toMatchObject({ kind: 'rejected', error: { code: 'SECRETS_UNAVAILABLE' } });
    expect(JSON.stringify(sealed)).not.toContain('pw-1234');
  });

  it('a rejected command keeps the names of its values, not the values', () => {
    const read = readCommand({
      op: 'command',
      dseq: 1,
      cmd_id: 'c1',
      kind: 'no.such.kind',
      args: { inputs: { password: 'pw-1234' } },
    });
    expect(read.kind).toBe('rejected');
    expect(JSON.stringify(read)).not.toContain('pw-1234');
  });
});

describe('the inspector and the log', () => {
  it('the inspector shows a sealed value as ***, whatever its key', () => {
    const box = new SecretBox(join(tempDir(), 'secrets.key'));
    const event = { type: 'run.submit', inputs: { db: box.seal('pw-1234', 'x'), note: 'hi' } };
    expect(redactSecrets(event)).toEqual({ type: 'run.submit', inputs: { db: '***', note: 'hi' } });
  });

  it('the log masks live secret values wherever they appear, in their JSON form too', async () => {
    const dir = tempDir();
    const live = new LiveSecrets();
    const path = join(dir, 'daemon.log');
    const log = await createDaemonLogger({
      logPath: path,
      level: 'info',
      foreground: false,
      maskText: (line) => live.mask(line),
    });
    live.set('run:r1', ['pw-"1234', 'tok-very-secret']);
    log.logger.info(
      { detail: 'the value pw-"1234 was here', nested: { x: ['tok-very-secret'] } },
      'about tok-very-secret',
    );
    live.delete('run:r1');
    log.logger.info('after: tok-very-secret');
    log.close();
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain('pw-\\"1234');
    expect(text.split('\n')[0]).not.toContain('tok-very-secret');
    expect(text).toContain('the value *** was here');
    // Once the run's step ended, its values are not known any more.
    expect(text).toContain('after: tok-very-secret');
  });
});
