import type { RedisOptions } from 'bullmq';
import { LthError } from '../core/errors.js';

/** A queue as the user names it, with what to connect with and how to show it. */
export interface QueueAddress {
  /** ioredis options (password, TLS, database); never printed. */
  readonly redis: RedisOptions;
  /** The address without credentials: what logs, progress and errors show. */
  readonly shown: string;
}

/**
 * Parses `redis://[user:password@]host[:port][/db]` or `rediss://...` (TLS). Every
 * connection retries for ever (maxRetriesPerRequest: null, as BullMQ's workers need), so
 * a Redis that restarts or is briefly unreachable makes lth wait, not fail.
 */
export function parseQueueUrl(url: string): QueueAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LthError(`--queue: expected redis://[:password@]host[:port][/db] or rediss://..., got '${redact(url)}'`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new LthError(`--queue: expected a redis:// or rediss:// URL, got '${u.protocol}//…'`);
  if (!u.hostname) throw new LthError('--queue: the URL names no host');
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new LthError(`--queue: the database must be a number, got '${u.pathname.slice(1)}'`);
  const port = u.port ? Number(u.port) : 6379;
  const redis: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''), port, db,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  };
  return { redis, shown: `${u.protocol}//${u.hostname}:${port}${db ? `/${db}` : ''}` };
}

/** `text` with the credentials of any Redis URL in it replaced by '***'. */
export function redact(text: string): string {
  return text.replace(/(rediss?:\/\/)[^@/\s]*@/g, '$1***@');
}
