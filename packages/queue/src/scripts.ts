/**
 * The product's Lua scripts, kept as files in `commands/` the way BullMQ keeps
 * `src/commands/*.lua`: a header naming KEYS and ARGV, named locals, and shared helpers
 * included (`--- @include "includes/<name>"`) rather than pasted. Every script touches the keys
 * of one hash slot only (a location's `{locationId}`, the dispatcher's `{ready}`, one OAuth
 * record, or the notification outbox's `{notify}`), so they run on Redis Cluster too.
 */
import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { RedisClient } from './connection.ts';

/**
 * Each script and how many of its arguments are KEYS (`undefined`: given with each call, for a
 * batch), grouped by the one module that calls it.
 */
export const SCRIPTS = {
  // location/ready-set.ts
  ghlMarkReady: { file: 'mark-ready', keys: 3 },
  ghlClaim: { file: 'claim', keys: 3 },
  ghlEndLease: { file: 'end-lease', keys: 3 },
  ghlRenewLease: { file: 'renew-lease', keys: 3 },
  // oauth/store.ts
  ghlOAuthBegin: { file: 'oauth-begin', keys: 1 },
  ghlOAuthFinish: { file: 'oauth-finish', keys: 1 },
  ghlOAuthFail: { file: 'oauth-fail', keys: 1 },
  // location/ledger-writeback.ts
  ghlWritersBeat: { file: 'writers-beat', keys: 2 },
  ghlWritersPending: { file: 'writers-pending', keys: 2 },
  // enqueue.ts
  ghlReplaceFinished: { file: 'replace-finished', keys: undefined },
  // location/budget.ts
  ghlBudgetLoad: { file: 'budget-load', keys: 2 },
  ghlBudgetSave: { file: 'budget-save', keys: 2 },
  // notify/outbox.ts
  ghlNotifyAdd: { file: 'notify-add', keys: 2 },
  ghlNotifyTake: { file: 'notify-take', keys: 2 },
  ghlNotifySettle: { file: 'notify-settle', keys: 2 },
  ghlNotifyRelease: { file: 'notify-release', keys: 1 },
} as const satisfies Record<string, { file: string; keys: number | undefined }>;

type Arg = string | number;
declare module 'ioredis' {
  interface RedisCommander<Context> {
    ghlMarkReady(...args: Arg[]): Result<number, Context>;
    ghlClaim(...args: Arg[]): Result<(string | number)[], Context>;
    ghlEndLease(...args: Arg[]): Result<number, Context>;
    ghlRenewLease(...args: Arg[]): Result<number, Context>;
    ghlOAuthBegin(...args: Arg[]): Result<(string | number)[], Context>;
    ghlOAuthFinish(...args: Arg[]): Result<number, Context>;
    ghlOAuthFail(...args: Arg[]): Result<number, Context>;
    ghlWritersBeat(...args: Arg[]): Result<string[], Context>;
    ghlWritersPending(...args: Arg[]): Result<string[], Context>;
    ghlReplaceFinished(...args: Arg[]): Result<number[], Context>;
    ghlBudgetLoad(...args: Arg[]): Result<(string | number)[], Context>;
    ghlBudgetSave(...args: Arg[]): Result<number, Context>;
    ghlNotifyAdd(...args: Arg[]): Result<[number, number], Context>;
    ghlNotifyTake(...args: Arg[]): Result<(string | number)[], Context>;
    ghlNotifySettle(...args: Arg[]): Result<number, Context>;
    ghlNotifyRelease(...args: Arg[]): Result<number, Context>;
  }
}

const DIR = new URL('./commands/', import.meta.url);
const INCLUDE = /^--- @include "([\w/-]+)"\s*$/gm;

/** A script's source with its includes resolved (each helper once, in order of first use). */
export function scriptSource(file: string): string {
  const seen = new Set<string>();
  const expand = (name: string): string =>
    readFileSync(new URL(`${name}.lua`, DIR), 'utf8').replace(INCLUDE, (_line, include: string) => {
      if (seen.has(include)) return '';
      seen.add(include);
      return expand(include);
    });
  return expand(file);
}

const sources = new Map<string, string>();

/** Defines every script on the connection (once per connection); ioredis sends EVALSHA, then EVAL on NOSCRIPT. */
export function defineScripts(redis: RedisClient): void {
  if (typeof (redis as Partial<RedisClient>).ghlBudgetLoad === 'function') return;
  for (const [name, { file, keys }] of Object.entries(SCRIPTS)) {
    let lua = sources.get(file);
    if (lua === undefined) {
      lua = scriptSource(file);
      sources.set(file, lua);
    }
    redis.defineCommand(name, keys === undefined ? { lua } : { numberOfKeys: keys, lua });
  }
}
