/**
 * Encrypting secret values at rest: AES-256-GCM (`node:crypto`) with one key per daemon state
 * directory, kept in its own file (`.charter/daemon/secrets.key`, mode 0600) and never in
 * `state.db`, so a copied or backed-up store reveals nothing without the key file.
 *
 * - The key file is created at the first value sealed, never when one is opened: a new key
 *   could not open what an older one sealed. Opening without the key file, with another key,
 *   or with damaged data throws SECRETS_UNAVAILABLE with a message that says which.
 * - Each value is sealed with a fresh 96-bit IV and bound (GCM additional data) to where it
 *   belongs (`run:<id>:inputs.<name>`, …), so a ciphertext moved to another run or field does
 *   not open.
 * - The envelope names the key by a short id (the first 8 hex digits of its SHA-256), which
 *   lets the error say "another key" rather than "damaged".
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { CharterError } from '../errors/charter-error.js';
import { SEALED_KEY, type SealedSecret } from './sealed.js';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';
/** The first line of the key file names its format; the second holds the key (base64). */
const KEY_FILE_HEADER = 'charter-daemon secret key v1';

export class SecretBox {
  readonly keyPath: string;
  #key: { bytes: Buffer; id: string } | undefined;

  constructor(keyPath: string) {
    this.keyPath = keyPath;
  }

  /** Encrypts `value` for the place `aad` names; creates the key file if there is none. */
  seal(value: string, aad: string): SealedSecret {
    const key = this.#loadKey(true);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.bytes, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    const payload = Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64');
    return { [SEALED_KEY]: `${VERSION}:${key.id}:${payload}` };
  }

  /** Decrypts an envelope sealed for `aad`; throws SECRETS_UNAVAILABLE when it cannot. */
  open(sealed: SealedSecret, aad: string): string {
    const [version, keyId, payload] = sealed[SEALED_KEY].split(':');
    if (version !== VERSION || keyId === undefined || payload === undefined) {
      throw unavailable(`a stored secret of ${describeAad(aad)} is not in a format this daemon reads`);
    }
    const key = this.#loadKey(false);
    if (keyId !== key.id) {
      throw unavailable(
        `the secret of ${describeAad(aad)} was encrypted with key ${keyId}, but ${this.keyPath} holds key ${key.id} (was the key file replaced?)`,
      );
    }
    const bytes = Buffer.from(payload, 'base64');
    if (bytes.length < IV_BYTES + TAG_BYTES)
      throw unavailable(`the stored secret of ${describeAad(aad)} is damaged`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.bytes, bytes.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([
        decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw unavailable(
        `the stored secret of ${describeAad(aad)} does not decrypt (damaged, or moved from elsewhere)`,
      );
    }
  }

  #loadKey(create: boolean): { bytes: Buffer; id: string } {
    if (this.#key !== undefined) return this.#key;
    let text: string | undefined;
    try {
      text = readFileSync(this.keyPath, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT')
        throw unavailable(`cannot read the key file ${this.keyPath}: ${(error as Error).message}`);
      if (!create) {
        throw unavailable(
          `the key file ${this.keyPath} is missing, so secrets stored before cannot be decrypted (restore it from the backup of the state directory)`,
        );
      }
    }
    const bytes = text === undefined ? this.#createKey() : parseKeyFile(this.keyPath, text);
    this.#key = { bytes, id: keyId(bytes) };
    return this.#key;
  }

  /** A new key, written to a temporary file (0600, synced) and linked into place (never over one). */
  #createKey(): Buffer {
    const bytes = randomBytes(KEY_BYTES);
    const temp = `${this.keyPath}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const fd = openSync(temp, 'wx', 0o600);
      try {
        writeSync(fd, `${KEY_FILE_HEADER}\n${bytes.toString('base64')}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      linkSync(temp, this.keyPath);
    } catch (error) {
      // Only one daemon holds the project lock, but never overwrite a key: use the one there.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        return parseKeyFile(this.keyPath, readFileSync(this.keyPath, 'utf8'));
      throw unavailable(`cannot create the key file ${this.keyPath}: ${(error as Error).message}`);
    } finally {
      rmSync(temp, { force: true });
    }
    return bytes;
  }
}

function parseKeyFile(path: string, text: string): Buffer {
  const [header, encoded] = text.split('\n');
  const bytes = Buffer.from(encoded ?? '', 'base64');
  if (header !== KEY_FILE_HEADER || bytes.length !== KEY_BYTES) {
    throw unavailable(`the key file ${path} is damaged (expected "${KEY_FILE_HEADER}" and a 32-byte key)`);
  }
  return bytes;
}

function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** `run:<id>:inputs.password` → `input "password" of run <id>`, for messages. */
function describeAad(aad: string): string {
  const match = /^run:([^:]+):(inputs|answers)\.(.+)$/.exec(aad);
  if (match === null) return aad;
  const [, runId, where, name] = match;
  return where === 'inputs' ? `input "${name}" of run ${runId}` : `answer "${name}" of run ${runId}`;
}

function unavailable(message: string): CharterError {
  return new CharterError('SECRETS_UNAVAILABLE', message);
}
