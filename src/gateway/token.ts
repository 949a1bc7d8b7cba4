/**
 * Where the gateway token comes from: `--gateway-token-file` (read again at every connect, and
 * watched so a rotated token reconnects a rejected link at once) or CHARTER_GATEWAY_TOKEN.
 * The token itself is never logged, never in status, never in an error message.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';

export interface TokenSource {
  read: () => string | null;
  /** Calls `onChange` when the token file changes; returns the function that stops watching. */
  watch: (onChange: () => void) => () => void;
}

export function gatewayTokenSource(
  tokenFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): TokenSource {
  if (tokenFile === undefined) {
    const fromEnv = env.CHARTER_GATEWAY_TOKEN?.trim();
    return { read: () => (fromEnv ? fromEnv : null), watch: () => () => undefined };
  }
  return {
    read: () => {
      try {
        const token = readFileSync(tokenFile, 'utf8').trim();
        return token === '' ? null : token;
      } catch {
        return null;
      }
    },
    watch: (onChange) => {
      const listener = (
        current: { mtimeMs: number; size: number },
        previous: { mtimeMs: number; size: number },
      ) => {
        if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size) onChange();
      };
      // Polling (not fs.watch): it survives editors that replace the file, and atomic renames.
      watchFile(tokenFile, { interval: 500, persistent: false }, listener);
      return () => unwatchFile(tokenFile, listener);
    },
  };
}
