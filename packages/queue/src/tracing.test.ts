import { describe, expect, it } from 'vitest';
import { spanNameOf, tracingRequested } from './tracing.ts';

describe('spanNameOf', () => {
  it.each<[string, string, string, string | undefined]>([
    ["BullMQ's bulk add", 'addBulk loc.{abc123}', 'addBulk loc.{locationId}', 'abc123'],
    ["BullMQ's add, with the job's name", 'add loc.{abc123}.m', 'add loc.{locationId}.m', 'abc123'],
    ['a delivery attempt', 'deliver loc.{Ve9EPM428h8vShlRW1KT}', 'deliver loc.{locationId}', 'Ve9EPM428h8vShlRW1KT'],
    ['two queues: both templated, the first named', 'move loc.{a} loc.{b}', 'move loc.{locationId} loc.{locationId}', 'a'],
    ['no location queue', 'POST /v1/messages', 'POST /v1/messages', undefined],
    ['another queue', 'addBulk dead-letters', 'addBulk dead-letters', undefined],
  ])('%s', (_, name, expected, locationId) => {
    expect(spanNameOf(name)).toEqual({ name: expected, locationId });
  });
});

describe('tracingRequested', () => {
  it.each<[Record<string, string>, boolean]>([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }, false],
  ])('%j: %s', (env, expected) => {
    expect(tracingRequested(env)).toBe(expected);
  });
});
