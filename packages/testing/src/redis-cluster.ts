/**
 * A real Redis Cluster of a test's own, from the `redis-server` binary: masters and replicas on
 * free loopback ports (cluster mode, AOF on), created with `redis-cli --cluster create`, torn
 * down with the test. For tests and chaos scenarios that must run on a cluster or fail one over.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort, isPortTaken, RedisServer } from './redis-server.ts';

export interface RedisClusterOptions {
  /** Default 3. */
  masters?: number;
  /** Default 1. */
  replicasPerMaster?: number;
  /** The append-only file's fsync policy, or `off` for no AOF (as a benchmark's single Redis). Default `everysec`. */
  appendfsync?: 'always' | 'everysec' | 'no' | 'off';
  /** How long a master may be unreachable before its replica takes over (ms). Default 2,000. */
  nodeTimeoutMs?: number;
}

export interface ClusterNode {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** For a replica, the id of its master. */
  masterId: string | undefined;
  /** Slot ranges a master serves. */
  slots: string[];
  /** False once the cluster marks it failed. */
  healthy: boolean;
}

export class RedisCluster {
  readonly servers: RedisServer[];
  readonly #masters: number;

  private constructor(servers: RedisServer[], masters: number) {
    this.servers = servers;
    this.#masters = masters;
  }

  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    // Its ports were free when chosen; a test file beside this one may bind one first.
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await RedisCluster.#start(options);
      } catch (error) {
        if (attempt === 5 || !isPortTaken(error)) throw error;
      }
    }
  }

  static async #start(options: RedisClusterOptions): Promise<RedisCluster> {
    const masters = options.masters ?? 3;
    const count = masters * (1 + (options.replicasPerMaster ?? 1));
    const ports = await clusterPorts(count);
    const started = await Promise.allSettled(
      ports.map((port) =>
        RedisServer.start({
          port,
          ...(options.appendfsync === 'off' ? {} : { appendfsync: options.appendfsync ?? 'everysec' }),
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            String(options.nodeTimeoutMs ?? 2_000),
            // A replica's first sync starts at once, not after Redis's default 5 s wait for more
            // replicas: until it has synced, it cannot take over from its master.
            '--repl-diskless-sync-delay',
            '0',
          ],
        }),
      ),
    );
    const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(servers.map((s) => s.stop()));
      throw failed.reason;
    }
    const cluster = new RedisCluster(servers, masters);
    try {
      await run('redis-cli', [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        String(options.replicasPerMaster ?? 1),
        '--cluster-yes',
      ]);
      await cluster.waitUntilHealthy();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Seed URLs, as REDIS_CLUSTER_NODES takes them (comma-separated). */
  get nodesSetting(): string {
    return this.servers.map((s) => s.url).join(',');
  }

  /** The cluster as one node sees it (`CLUSTER NODES`), from the first node that answers. */
  async nodes(): Promise<ClusterNode[]> {
    for (const server of this.servers.filter((s) => s.running)) {
      const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const text = (await client.call('CLUSTER', 'NODES')) as string;
        return parseClusterNodes(text);
      } catch {
        // Try the next one.
      } finally {
        client.disconnect();
      }
    }
    throw new Error('no cluster node answers');
  }

  /**
   * Waits until every running node says `cluster_state:ok`, sees as many healthy masters (with
   * slots) as the cluster has and every other running node as a healthy replica, and each replica
   * has synced with its master.
   */
  async waitUntilHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(
        this.servers
          .filter((s) => s.running)
          .map(async (s) => {
            const client = new Redis(s.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
            client.on('error', () => undefined);
            try {
              await client.connect();
              if (!/cluster_state:ok/.test((await client.call('CLUSTER', 'INFO')) as string)) return false;
              const nodes = parseClusterNodes((await client.call('CLUSTER', 'NODES')) as string);
              const masters = nodes.filter((n) => n.role === 'master' && n.healthy && n.slots.length > 0);
              const replicas = nodes.filter((n) => n.role === 'replica' && n.healthy);
              if (masters.length !== this.#masters || masters.length + replicas.length !== this.servers.filter((x) => x.running).length) return false;
              // A replica counts once it has synced with its master (it can take over only then).
              const replication = (await client.info('replication')).replace(/\r/g, '');
              return !/role:slave/.test(replication) || /master_link_status:up/.test(replication);
            } catch {
              return false;
            } finally {
              client.disconnect();
            }
          }),
      );
      if (states.length > 0 && states.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error(`the cluster did not become healthy within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** The master that serves `slot` now (`CLUSTER KEYSLOT` gives a key's). */
  async masterOf(slot: number): Promise<ClusterNode> {
    const inRange = (range: string) => {
      const [from, to = from] = range.split('-').map(Number);
      return from !== undefined && to !== undefined && slot >= from && slot <= to;
    };
    const master = (await this.nodes()).find((n) => n.role === 'master' && n.slots.some(inRange));
    if (master === undefined) throw new Error(`no master serves slot ${slot}`);
    return master;
  }

  /** The server behind a node's port. */
  server(port: number): RedisServer {
    const s = this.servers.find((x) => x.port === port);
    if (s === undefined) throw new Error(`no node on port ${port}`);
    return s;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}

/** `CLUSTER NODES` text as records. */
export function parseClusterNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id = '', address = '', flags = '', master = '-', , , , , ...slots] = line.trim().split(' ');
      const port = Number(/:(\d+)@/.exec(address)?.[1] ?? 0);
      const flagList = flags.split(',');
      return {
        id,
        port,
        role: flagList.includes('master') ? 'master' : 'replica',
        masterId: master === '-' ? undefined : master,
        slots,
        healthy: !flagList.includes('fail') && !flagList.includes('fail?'),
      };
    });
}

/** Ports whose cluster bus port (+10,000) is free too. */
async function clusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (port > 55_000 || ports.includes(port)) continue;
    if (!(await isFree(port + 10_000))) continue;
    ports.push(port);
  }
  return ports;
}

async function isFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} exited ${String(code)}:\n${out}`))));
  });
}
