import { describe, expect, it } from 'vitest';
import { answerAttributes, httpSpanName, redactedUrl, type HttpAnswer } from './http-spans.ts';

describe('httpSpanName', () => {
  it.each<[string, string | undefined, string]>([
    ['POST', '/v1/messages', 'POST /v1/messages'],
    ['get', '/conversations/{conversationId}/messages', 'GET /conversations/{conversationId}/messages'],
    ['GET', undefined, 'GET'],
    ['PROPFIND', '/v1/messages', 'HTTP'],
    ['BREW', undefined, 'HTTP'],
  ])('%s %s: %s', (method, route, expected) => {
    expect(httpSpanName(method, route)).toBe(expected);
  });
});

describe('answerAttributes', () => {
  it.each<[HttpAnswer, 'client' | 'server', Record<string, unknown>, boolean]>([
    [{ status: 201 }, 'client', { 'http.response.status_code': 201 }, false],
    [{ status: 429 }, 'client', { 'http.response.status_code': 429, 'error.type': '429' }, true],
    [{ status: 404 }, 'server', { 'http.response.status_code': 404 }, false],
    [{ status: 503 }, 'server', { 'http.response.status_code': 503, 'error.type': '503' }, true],
    [{ status: 502 }, 'client', { 'http.response.status_code': 502, 'error.type': '502' }, true],
    [{ errorCode: 'ECONNRESET' }, 'client', { 'error.type': 'ECONNRESET' }, true],
    [{ errorCode: 'aborted' }, 'server', { 'error.type': 'aborted' }, true],
  ])('%j as %s', (answer, side, attributes, failed) => {
    expect(answerAttributes(answer, side)).toEqual({ attributes, failed });
  });
});

describe('redactedUrl', () => {
  it.each<[string, string]>([
    ['https://services.leadconnectorhq.com/conversations/messages/inbound', 'https://services.leadconnectorhq.com/conversations/messages/inbound'],
    ['https://h.test/conversations/search?locationId=loc1&contactId=c1', 'https://h.test/conversations/search?locationId=loc1&contactId=c1'],
    ['https://user:secret@h.test/x', 'https://REDACTED:REDACTED@h.test/x'],
    ['https://h.test/x?access_token=abc&limit=100', 'https://h.test/x?access_token=REDACTED&limit=100'],
    ['https://h.test/x?Signature=abc&sig=def&X-Goog-Signature=g', 'https://h.test/x?Signature=REDACTED&sig=REDACTED&X-Goog-Signature=REDACTED'],
  ])('%s', (url, expected) => {
    expect(redactedUrl(new URL(url))).toBe(expected);
  });
});
