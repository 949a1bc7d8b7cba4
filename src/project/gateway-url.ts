/** The gateway address as given by a person: http(s) or ws(s), with a host; trailing slashes dropped. */
import { z } from 'zod';

export const GatewayUrlSchema = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value);
      return ['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol) && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an http://, https://, ws:// or wss:// URL with a host, e.g. http://127.0.0.1:8765')
  .transform((value) => value.replace(/\/+$/, ''));
