/**
 * What ships beside the code, checked against the code: Prometheus scrapes the ports compose
 * gives the worker and the intake; `.env.example` lists every setting the code reads and every
 * variable compose interpolates. (The dashboard and the alert rules: monitoring.test.ts.)
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig, SETTINGS } from '@ghl-ingest/queue';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const root = resolve(import.meta.dirname, '../../..');
const read = (path: string) => readFileSync(resolve(root, path), 'utf8');

describe('what ships beside the code', () => {
  it('Prometheus scrapes the ports compose gives the worker and the intake', () => {
    const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
      services: Record<string, { environment?: Record<string, string>; profiles?: string[] }>;
    };
    const prometheus = parseYaml(read('monitoring/prometheus.yml')) as {
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[]; static_configs?: { targets: string[] }[] }[];
    };
    const job = (name: string) => prometheus.scrape_configs.find((j) => j.job_name === name);
    expect(job('worker')?.dns_sd_configs?.[0]).toEqual({ names: ['worker'], type: 'A', port: Number(compose.services.worker?.environment?.ADMIN_PORT) });
    expect(job('intake')?.static_configs?.[0]?.targets).toEqual([`intake:${compose.services.intake?.environment?.INTAKE_PORT ?? ''}`]);
    expect(compose.services.prometheus?.profiles).toEqual(['monitoring']);
    expect(compose.services.grafana?.profiles).toEqual(['monitoring']);
  });

  it('.env.example lists every setting the code reads and every variable compose uses, each with its default', () => {
    const example = read('.env.example');
    const listed = new Map([...example.matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map(([, k = '', v = '']) => [k, v]));
    const compose = read('docker-compose.yml');
    const composeVars = new Map([...compose.matchAll(/\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*)|:\?[^}]*)?\}/g)].map(([, k = '', v]) => [k, v]));
    expect(SETTINGS.filter((s) => !listed.has(s))).toEqual([]);
    expect([...composeVars.keys()].filter((v) => !listed.has(v))).toEqual([]);
    // Where compose has a default, it is the one .env.example gives.
    const differing = [...composeVars].filter(([k, v]) => v !== undefined && k !== 'REDIS_URL' && listed.get(k) !== v);
    expect(differing).toEqual([]);
    // And the code's defaults are the ones .env.example gives.
    const defaults = loadConfig({});
    expect(listed.get('GHL_RATE_LIMIT_MAX')).toBe(String(defaults.rateLimit.max));
    expect(listed.get('GHL_DAILY_LIMIT')).toBe(String(defaults.rateLimit.daily));
    expect(listed.get('SHUTDOWN_TIMEOUT_MS')).toBe(String(defaults.shutdownTimeoutMs));
    expect(listed.get('QUEUE_PREFIX')).toBe(defaults.queuePrefix);
    expect(listed.get('REDIS_URL')).toBe(defaults.redisUrl);
  });
});
