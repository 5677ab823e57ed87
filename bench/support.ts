/** What the benchmarks share: a Redis, a stand-in in its own process, child processes, medians. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedis, everyPrimary, whenReady, type RedisClient } from '@ghl-ingest/queue';
import { nodeArgsOf, RedisCluster, RedisServer, waitForPing } from '@ghl-ingest/testing';

export const ROOT = resolve(import.meta.dirname, '..');

export async function benchRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  const url = process.env.REDIS_URL;
  if (url !== undefined && url !== '') {
    await waitForPing(url);
    return { url, stop: () => Promise.resolve() };
  }
  const server = await RedisServer.start();
  return { url: server.url, stop: () => server.stop() };
}

/** A Redis of a benchmark's own, so that its counters are ours alone: one, or a cluster. */
export interface OwnRedis {
  /** `one Redis` or `Redis Cluster (3 masters, 3 replicas)`, for the report. */
  label: string;
  /** What the product's processes are given: REDIS_URL, or REDIS_CLUSTER_NODES (REDIS_URL then names a dead port). */
  env: Record<string, string>;
  /** REDIS_URL for the bare BullMQ baselines, or the cluster's seeds (they take either). */
  bareTarget: string;
  client: RedisClient;
  /** An INFO field (`name:value`, or `name=value` as in commandstats) summed over every master. */
  info(section: string, field: string): Promise<number>;
  /** Deletes every key on every master. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A redis-server of the benchmark's own, or with BENCH_REDIS=cluster a local Redis Cluster (3
 * masters, 3 replicas, no AOF, as the single one), reached by REDIS_CLUSTER_NODES as a user does.
 */
export async function ownRedis(name: string): Promise<OwnRedis> {
  const onCluster = process.env.BENCH_REDIS === 'cluster';
  const backend = onCluster ? await RedisCluster.start({ appendfsync: 'off' }) : await RedisServer.start();
  const nodes = backend instanceof RedisCluster ? backend.nodesSetting : undefined;
  const url = backend instanceof RedisServer ? backend.url : 'redis://127.0.0.1:1';
  const client = createRedis({ redisUrl: url, redisClusterNodes: nodes?.split(',') }, 'worker', name);
  await whenReady(client, 10_000);
  return {
    label: nodes === undefined ? 'one Redis' : 'Redis Cluster (3 masters, 3 replicas)',
    env: { REDIS_URL: url, ...(nodes === undefined ? {} : { REDIS_CLUSTER_NODES: nodes }) },
    bareTarget: nodes ?? url,
    client,
    async info(section, field) {
      const values = await Promise.all(
        everyPrimary(client).map(async (n) => Number(new RegExp(`${field}[:=]([\\d.]+)`).exec(await n.info(section))?.[1] ?? 0)),
      );
      return values.reduce((a, b) => a + b, 0);
    },
    async flush() {
      await Promise.all(everyPrimary(client).map((n) => n.flushall()));
    },
    async stop() {
      await client.quit();
      await backend.stop();
    },
  };
}

export interface Stand {
  url: string;
  stats(): Promise<{
    accepted: number;
    requests: number;
    reads: number;
    dropped: number;
    duplicateAltIds: number;
    rateLimited: number;
    acceptedByLocation: Record<string, number>;
  }>;
  admin(method: string, path: string, body?: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

/** The stand-in in a process of its own, so it does not share an event loop with what is measured. */
export async function standIn(args: string[]): Promise<Stand> {
  const child = spawn(process.execPath, [resolve(ROOT, 'packages/fake-api/src/main.ts'), '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((res, rej) => {
    let buf = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      const m = /listening on (\S+)/.exec(buf);
      if (m?.[1] !== undefined) res(m[1]);
    });
    child.once('exit', (code) => rej(new Error(`fake-api exited with ${String(code)}`)));
  });
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}/__admin/${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return res.json();
  };
  return {
    url,
    admin,
    stats: () => admin('GET', 'stats') as ReturnType<Stand['stats']>,
    stop: () => stopChild(child),
  };
}

/** A script as a process; `pnpm worker`'s script runs with the Node flags package.json gives it. */
export function node(script: string, env: Record<string, string>, quiet = true): ChildProcess {
  const args = script === 'apps/worker/src/main.ts' ? nodeArgsOf('worker') : [resolve(ROOT, script)];
  return spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'],
  });
}

/** CPU seconds a process has used (utime + stime). */
export function processCpu(pid: number): number {
  const fields =
    readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
      .split(') ')[1]
      ?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
