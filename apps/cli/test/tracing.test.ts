/**
 * OpenTelemetry as users switch it on: the standard OTEL_* variables on `ingest serve` and
 * `pnpm worker` (processes started as the README says), a collector (here a local OTLP/HTTP JSON
 * receiver) gets one trace per message from enqueue to delivery, and the worker's log line for
 * the delivery names that trace. Without the variables nothing is exported.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { createProducer } from '@ghl-ingest/producer';
import { loadConfig } from '@ghl-ingest/queue';
import { nodeArgsOf, until, useRedis } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

/** SPAN_KIND_PRODUCER and SPAN_KIND_CONSUMER in OTLP. */
const PRODUCER = 4;
const CONSUMER = 5;

interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}

function valueOf(v: AnyValue | undefined): unknown {
  return v?.stringValue ?? (v?.intValue === undefined ? v?.boolValue : Number(v.intValue));
}

/** A collector's OTLP/HTTP endpoint (JSON encoding), keeping every span it receives. */
async function collector(): Promise<{ url: string; spans: ReceivedSpan[]; server: Server }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: AnyValue }[] };
            scopeSpans: {
              spans: {
                traceId: string;
                spanId: string;
                parentSpanId?: string;
                name: string;
                kind: number;
                attributes?: { key: string; value: AnyValue }[];
              }[];
            }[];
          }[];
        };
        for (const rs of body.resourceSpans) {
          const service = String(valueOf(rs.resource.attributes.find((a) => a.key === 'service.name')?.value));
          for (const s of rs.scopeSpans.flatMap((ss) => ss.spans)) {
            spans.push({
              service,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name,
              kind: s.kind,
              attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, valueOf(a.value)])),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return { url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`, spans, server };
}

describe('OpenTelemetry tracing', () => {
  const redis = useRedis();
  const children: ChildProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = once(c, 'exit');
      c.kill('SIGTERM');
      await exited;
    }
  });

  function start(script: 'worker' | 'ingest', args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string } {
    const child = spawn(process.execPath, [...nodeArgsOf(script), ...args], {
      cwd: root,
      env: { ...process.env, REDIS_URL: redis.url, QUEUE_PREFIX: redis.prefix, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    return { child, output: () => text };
  }

  it('one trace from enqueue at the intake to delivery by a worker, its id in the worker log', async () => {
    const otel = await collector();
    const fake = await FakeHighLevel.start();
    try {
      const env = {
        GHL_API_BASE_URL: fake.url,
        GHL_TOKEN: 'trace-token',
        INTAKE_TOKEN: 'trace-intake',
        OTEL_EXPORTER_OTLP_ENDPOINT: otel.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
      };
      const intake = start('ingest', ['serve', '--port', '0'], env);
      const worker = start('worker', [], env);
      await until(() => /intake listening on (\S+)/.test(intake.output()), 20_000, 'the intake to listen');
      const url = /intake listening on (\S+)/.exec(intake.output())?.[1] ?? '';
      const res = await fetch(`${url}/v1/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer trace-intake', 'content-type': 'application/json' },
        body: JSON.stringify({ locationId: 'traceLoc', type: 'SMS', contactId: 'c1', message: 'traced', altId: 'trace-1' }),
      });
      expect(res.status).toBe(202);
      await until(() => fake.stats().accepted === 1, 20_000, 'the delivery');

      await until(() => otel.spans.some((s) => s.kind === CONSUMER && s.attributes['ghl.message_id'] !== undefined), 20_000, 'the consumer span');
      const consumer = otel.spans.find((s) => s.kind === CONSUMER && s.attributes['ghl.message_id'] !== undefined);
      await until(() => otel.spans.some((s) => s.kind === PRODUCER && s.traceId === consumer?.traceId), 20_000, 'the producer span of the same trace');
      const producer = otel.spans.find((s) => s.kind === PRODUCER && s.traceId === consumer?.traceId);
      expect(producer?.service).toBe('ghl-ingest-intake');
      expect(consumer).toMatchObject({ service: 'ghl-ingest-worker', name: 'deliver loc.{locationId}' });
      expect(consumer?.attributes).toMatchObject({ 'ghl.location_id': 'traceLoc', 'http.response.status_code': 201, 'messaging.system': 'bullmq' });

      await until(() => worker.output().includes('"msg":"delivered"'), 10_000, 'the delivered log line');
      const line =
        worker
          .output()
          .split('\n')
          .find((l) => l.includes('"msg":"delivered"')) ?? '{}';
      expect(JSON.parse(line)).toMatchObject({ trace_id: consumer?.traceId, span_id: consumer?.spanId });
    } finally {
      otel.server.close();
      await fake.close();
    }
  });

  it('without OTEL_* variables nothing is exported and log lines carry no trace ids', async () => {
    const fake = await FakeHighLevel.start();
    try {
      const worker = start('worker', [], { GHL_API_BASE_URL: fake.url, GHL_TOKEN: 't', OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_TRACES_EXPORTER: '' });
      const producer = await createProducer({ config: loadConfig({ REDIS_URL: redis.url, QUEUE_PREFIX: redis.prefix }) });
      await producer.send([{ locationId: 'plainLoc', type: 'SMS', contactId: 'c1', message: 'untraced', altId: 'plain-1' }]);
      await producer.close();
      await until(() => worker.output().includes('"msg":"delivered"'), 20_000, 'the delivered log line');
      expect(worker.output()).not.toContain('trace_id');
    } finally {
      await fake.close();
    }
  });
});
