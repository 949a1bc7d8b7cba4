import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CharterError } from '../../src/errors/charter-error.js';
import { loadProjectConfig, ProjectConfigSchema, resolveDaemonSettings } from '../../src/project/config.js';

const dirs: string[] = [];
function projectWith(yml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'charter.yml'), yml);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function configError(yml: string): CharterError {
  try {
    loadProjectConfig(projectWith(yml));
  } catch (error) {
    if (error instanceof CharterError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

describe('charter.yml', () => {
  it('an empty file is a valid config; unknown top-level keys belong to other tools', () => {
    expect(loadProjectConfig(projectWith(''))).toEqual({});
    expect(loadProjectConfig(projectWith('name: x\nworkflows_dir: flows\n'))).toMatchObject({ name: 'x' });
  });

  it('names the file and every bad field', () => {
    const error = configError(
      'daemon:\n  log_level: loud\n  drain_timeout_seconds: -1\n  typo: 1\ngateway:\n  url: ftp://x\n',
    );
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.message).toContain('charter.yml is invalid');
    for (const field of ['daemon.log_level', 'daemon.drain_timeout_seconds', 'daemon', 'gateway.url']) {
      expect(error.message).toContain(`- ${field}:`);
    }
    expect(error.message).toContain('typo');
  });

  it('refuses YAML that does not parse or is not a mapping', () => {
    expect(configError('name: [unclosed\n').message).toContain('not valid YAML');
    expect(configError('- a\n- b\n').message).toContain('must be a YAML mapping');
  });
});

describe('daemon settings precedence', () => {
  const root = '/projects/site';
  const config = {
    gateway: { url: 'http://from-yml:1' },
    daemon: { log_level: 'warn' as const, drain_timeout_seconds: 2.5, control_idle_timeout_seconds: 0.5 },
  };

  it('defaults without anything', () => {
    expect(resolveDaemonSettings(root, {}, {}, {})).toEqual({
      projectName: 'site',
      gatewayUrl: null,
      logLevel: 'info',
      drainTimeoutMs: 30_000,
      controlIdleTimeoutMs: 10_000,
      controlMaxBufferedBytes: 64 * 1024 * 1024,
      maxRuns: 4,
      maxQueuedRuns: 1000,
      killGraceMs: 10_000,
      stepEnv: 'inherit',
      metricsListen: null,
      retention: { maxAgeDays: 30, maxFinishedRuns: 10_000, maxStoreMb: 1024, intervalMinutes: 60 },
    });
  });

  it('reads daemon.retention, and refuses unknown keys in it', () => {
    const settings = resolveDaemonSettings(
      root,
      { daemon: { retention: { max_finished_runs: 100, max_store_mb: 64 } } },
      {},
      {},
    );
    expect(settings.retention).toEqual({
      maxAgeDays: 30,
      maxFinishedRuns: 100,
      maxStoreMb: 64,
      intervalMinutes: 60,
    });
    expect(ProjectConfigSchema.safeParse({ daemon: { retention: { max_runs: 1 } } }).success).toBe(false);
    expect(ProjectConfigSchema.safeParse({ daemon: { retention: { max_store_mb: 0 } } }).success).toBe(false);
  });

  it('daemon.control_max_buffered_mb: 1 to 4096 MiB, in bytes', () => {
    const settings = resolveDaemonSettings(root, { daemon: { control_max_buffered_mb: 1.5 } }, {}, {});
    expect(settings.controlMaxBufferedBytes).toBe(1.5 * 1024 * 1024);
    for (const bad of [0.5, 4097, '64'])
      expect(ProjectConfigSchema.safeParse({ daemon: { control_max_buffered_mb: bad } }).success).toBe(false);
    expect(ProjectConfigSchema.safeParse({ daemon: { control_max_buffered_mb: 4096 } }).success).toBe(true);
  });

  it('daemon.step_env: inherit or minimal, nothing else', () => {
    expect(resolveDaemonSettings(root, { daemon: { step_env: 'minimal' } }, {}, {}).stepEnv).toBe('minimal');
    expect(ProjectConfigSchema.safeParse({ daemon: { step_env: 'none' } }).success).toBe(false);
  });

  it('charter.yml, then the environment, then flags win', () => {
    expect(resolveDaemonSettings(root, config, {}, {})).toMatchObject({
      gatewayUrl: 'http://from-yml:1',
      logLevel: 'warn',
      drainTimeoutMs: 2500,
      controlIdleTimeoutMs: 500,
    });
    const env = { CHARTER_GATEWAY_URL: 'http://from-env:2/' };
    expect(resolveDaemonSettings(root, config, {}, env).gatewayUrl).toBe('http://from-env:2');
    expect(
      resolveDaemonSettings(root, config, { gatewayUrl: 'https://from-flag:3', logLevel: 'debug' }, env),
    ).toMatchObject({ gatewayUrl: 'https://from-flag:3', logLevel: 'debug' });
  });

  it('a bad gateway URL from the environment names its source', () => {
    expect(() => resolveDaemonSettings(root, {}, {}, { CHARTER_GATEWAY_URL: 'not a url' })).toThrow(
      /CHARTER_GATEWAY_URL: must be an http/,
    );
  });

  it('metrics: --metrics wins over daemon.metrics.listen; loopback only unless allowed', () => {
    const withMetrics = { daemon: { metrics: { listen: '127.0.0.1:9464' } } };
    expect(resolveDaemonSettings(root, withMetrics, {}, {}).metricsListen).toEqual({
      host: '127.0.0.1',
      port: 9464,
    });
    expect(resolveDaemonSettings(root, withMetrics, { metricsListen: '[::1]:0' }, {}).metricsListen).toEqual({
      host: '::1',
      port: 0,
    });
    expect(() =>
      resolveDaemonSettings(root, { daemon: { metrics: { listen: '0.0.0.0:9464' } } }, {}, {}),
    ).toThrow(/daemon\.metrics\.listen: 0\.0\.0\.0 is not a loopback address.*--metrics-allow-remote/);
    expect(() => resolveDaemonSettings(root, {}, { metricsListen: '10.1.2.3:1' }, {})).toThrow(
      /^--metrics: /,
    );
    expect(
      resolveDaemonSettings(root, {}, { metricsListen: '0.0.0.0:1', metricsAllowRemote: true }, {})
        .metricsListen,
    ).toEqual({ host: '0.0.0.0', port: 1 });
    expect(() => resolveDaemonSettings(root, {}, { metricsListen: 'localhost:99999' }, {})).toThrow(
      /port from 0 to 65535/,
    );
  });
});
