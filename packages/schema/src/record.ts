/**
 * The import record (an API body plus `locationId` and an optional `key`) and its normalisation:
 * lenient about what comes in, strict about what goes out, and never throwing on any input.
 */
import type { CountryCode } from 'libphonenumber-js/max';
import {
  CALL_FIELDS,
  CALL_STATUSES,
  DEFAULT_PROVIDER_TYPES,
  DIRECTIONS,
  MESSAGE_TYPES,
  type CallData,
  type CallStatus,
  type InboundMessageBody,
  type MessageType,
} from './body.ts';
import { CONTACT_FIELDS, CONTACT_NAME_CHARS, type ContactRef } from './contact.ts';
import { derivedAltId, idempotencyKey } from './idempotency-key.ts';
import { RECORD_FIELD_NAMES, type InboundRecord } from './inbound-record.ts';
import { formatPath, type RecordIssue } from './issues.ts';
import { LIMITS } from './limits.ts';
import { clip, normalizeDate, normalizeEmail, normalizePhone, normalizeUrl, parseList, type Normalised } from './normalize.ts';
import { inboundMessageBodySchema, LOCATION_ID } from './strict.ts';

/** A normalised record, ready to become a job. */
export interface MessageRecord {
  locationId: string;
  /** The idempotency key: job id, ledger key, and the id people use in `dlq show`. */
  key: string;
  /** The `key` the source gave, if any (kept so an export can be imported again unchanged). */
  sourceKey?: string;
  body: InboundMessageBody;
  /** The contact by phone or email, when the record gave no HighLevel ids: found or created by the worker. */
  contact?: ContactRef;
  /**
   * Local files among `attachments` (a `file:` URL, or a path relative to the import file), as
   * written: the import reads them, the worker uploads them right before the post.
   */
  files?: string[];
}

export interface NormalizeOptions {
  /** Region for phone numbers written without a country code. Default `US`. */
  defaultRegion?: CountryCode;
  /** Filled into messages that need a provider and lack one (`GHL_CONVERSATION_PROVIDER_ID`). */
  defaultConversationProviderId?: string;
  /** `reject` (default): an unknown field is an error naming it. `drop`: it is ignored. */
  unknownFields?: 'reject' | 'drop';
  /** Used for rows without a `locationId` (`ingest import --location`). */
  defaultLocationId?: string;
  /**
   * `refuse` (default): an attachment must be an http(s) URL. `allow`: it may also be a local
   * file (`ingest import` reads it; an HTTP caller must never make the server read its files).
   */
  localFiles?: 'refuse' | 'allow';
}

export type RecordResult =
  { ok: true; record: MessageRecord } | { ok: false; issues: RecordIssue[]; /** best-effort id of the row, for the rejects report */ key?: string };

const RECORD_FIELDS = new Set<string>(RECORD_FIELD_NAMES);
/** Unknown fields named one by one in a rejection; past this, one line counts the rest. */
const MAX_UNKNOWN_REPORTED = 20;
const CALL_FIELD_SET = new Set<string>(CALL_FIELDS);
const CONTACT_FIELD_SET = new Set<string>(CONTACT_FIELDS);
/** A URL scheme at the start of an attachment (`https:`, `file:`, `ftp:`): a Windows drive letter is not one. */
const SCHEME = /^([a-z][a-z0-9+.-]+):/i;

/**
 * Names no field may have, at any depth: assigning to them through a plain object changes its
 * prototype (or, for `__proto__.x`, Object.prototype itself, and so every object in the process).
 */
export const RESERVED_FIELD_NAMES: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export const RESERVED_FIELD_REASON = 'is a reserved name (__proto__, constructor, prototype): a field so named could alter objects of the whole process';

/** The segment of a dotted field name (`call.to`, `__proto__.x`) that is reserved, if any. */
export function reservedSegment(name: string): string | undefined {
  return name.split('.').find((segment) => RESERVED_FIELD_NAMES.has(segment.trim()));
}

type Parse<T> = (value: unknown) => Normalised<T> & { at?: PropertyKey[] };

const isAbsent = (value: unknown): boolean => value === undefined || value === null || (typeof value === 'string' && value.trim() === '');

function text(max: number, opts: { numbers?: boolean } = {}): Parse<string> {
  return (value) => {
    let raw: string;
    if (typeof value === 'string') raw = value;
    else if (opts.numbers === true && typeof value === 'number' && Number.isFinite(value)) raw = String(value);
    else return { ok: false, message: `must be text, not ${describe(value)}` };
    const trimmed = raw.trim();
    if (trimmed.length > max) return { ok: false, message: `is ${trimmed.length} characters long; the limit is ${max}` };
    return { ok: true, value: trimmed };
  };
}

/**
 * Other systems' words for a direction, as their exports write them: Twilio's message logs say
 * `outbound-api` (sent through its API), `outbound-reply` (a reply to an inbound message) and
 * `outbound-call` (sent during a call) for what HighLevel calls outbound.
 */
export const DIRECTION_ALIASES: Readonly<Record<string, (typeof DIRECTIONS)[number]>> = {
  'outbound-api': 'outbound',
  'outbound-reply': 'outbound',
  'outbound-call': 'outbound',
};

function oneOf<T extends string>(values: readonly T[], what: string, aliases: Readonly<Record<string, T>> = {}): Parse<T> {
  const byLower = new Map([...values.map((v) => [v.toLowerCase(), v] as const), ...Object.entries(aliases)]);
  return (value) => {
    if (typeof value !== 'string') return { ok: false, message: `must be text, not ${describe(value)}` };
    const found = byLower.get(value.trim().toLowerCase());
    if (found !== undefined) return { ok: true, value: found };
    return { ok: false, message: `"${clip(value)}" is not a ${what}; expected one of ${values.join(', ')}` };
  };
}

function list(max: number, item: (value: string) => Normalised<string>, dedupe: boolean): Parse<string[]> {
  return (value) => {
    const parsed = parseList(value);
    if (!parsed.ok) return parsed;
    const out: string[] = [];
    for (const [i, raw] of parsed.value.entries()) {
      const r = item(raw);
      if (!r.ok) return { ...r, at: [i] };
      if (!dedupe || !out.includes(r.value)) out.push(r.value);
    }
    if (out.length > max) return { ok: false, message: `has ${out.length} items; the limit is ${max}` };
    return { ok: true, value: out };
  };
}

const idText = text(LIMITS.idChars, { numbers: true });
const sourceId = text(LIMITS.sourceIdChars, { numbers: true });
const emailText: Parse<string> = (value) => {
  const t = text(320)(value);
  return t.ok ? normalizeEmail(t.value) : t;
};

/**
 * An attachment: an http(s) URL (posted as given), or a local file (a `file:` URL or a path),
 * kept as written for the import to resolve. Any other scheme is refused.
 */
function attachment(value: string): Normalised<string> {
  if (value.length > LIMITS.urlChars) return { ok: false, message: `is longer than ${LIMITS.urlChars} characters` };
  const scheme = SCHEME.exec(value.trim())?.[1]?.toLowerCase();
  if (scheme === undefined) return value.trim() === '' ? { ok: false, message: 'is empty' } : { ok: true, value: value.trim() };
  if (scheme === 'file') {
    try {
      const url = new URL(value.trim());
      if (url.pathname === '' || url.pathname === '/') return { ok: false, message: `"${clip(value)}" names no file` };
    } catch {
      return { ok: false, message: `"${clip(value)}" is not a file: URL` };
    }
    return { ok: true, value: value.trim() };
  }
  if (scheme === 'http' || scheme === 'https') return normalizeUrl(value);
  return { ok: false, message: `"${clip(value)}" must be an http(s) URL, a file: URL or a file path, not ${scheme}` };
}

/** Whether an attachment (as `attachment` returned it) is a local file. */
const isLocalFile = (value: string): boolean => !/^https?:/i.test(value);

const locationId: Parse<string> = (value) => {
  const t = idText(value);
  if (!t.ok) return t;
  if (!LOCATION_ID.test(t.value)) return { ok: false, message: 'may hold only letters, digits, "_" and "-"' };
  return t;
};

/**
 * How each top-level field is read (`contact` apart): one parser for each field of InboundRecord, and
 * none for any other. Absent values (missing, null, blank) never reach these.
 */
const FIELD_PARSERS = {
  locationId,
  key: sourceId,
  type: oneOf(MESSAGE_TYPES, 'message type'),
  attachments: list(LIMITS.attachments, attachment, false),
  message: text(LIMITS.messageChars),
  conversationId: idText,
  contactId: idText,
  conversationProviderId: idText,
  html: text(LIMITS.htmlChars),
  subject: text(LIMITS.subjectChars),
  emailFrom: emailText,
  emailTo: emailText,
  emailCc: list(LIMITS.ccAddresses, normalizeEmail, true),
  emailBcc: list(LIMITS.ccAddresses, normalizeEmail, true),
  emailMessageId: idText,
  altId: sourceId,
  direction: oneOf(DIRECTIONS, 'direction', DIRECTION_ALIASES),
  date: (value) => normalizeDate(value),
  call: () => ({ ok: false, message: 'parsed separately' }),
} satisfies Record<Exclude<keyof InboundRecord, 'contact'>, Parse<unknown>>;

interface Draft extends Partial<Omit<InboundMessageBody, 'call'>> {
  locationId?: string;
  key?: string;
  call?: CallData;
  contact?: ContactRef;
  files?: string[];
}

/**
 * Validates and normalises one record. Every problem is reported, each with its field path;
 * the caller adds the line number. Never throws, whatever `input` is.
 */
export function normalizeRecord(input: unknown, options: NormalizeOptions = {}): RecordResult {
  const issues: RecordIssue[] = [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, issues: [{ path: '', message: `a record must be a JSON object, not ${describe(input)}` }] };
  }
  const raw = ownFields(input as Record<string, unknown>);
  const draft: Draft = {};
  const failed = new Set<string>();
  const report = (path: PropertyKey[], message: string) => {
    issues.push({ path: formatPath(path), message });
    failed.add(String(path[0]));
  };

  // Refused whatever `unknownFields` says: dropping them quietly would hide a hostile file.
  for (const field of Object.keys(raw)) if (reservedSegment(field) !== undefined) report([field], RESERVED_FIELD_REASON);
  if (options.unknownFields !== 'drop') {
    const unknown = Object.keys(raw).filter((field) => !RECORD_FIELDS.has(field) && reservedSegment(field) === undefined);
    for (const field of unknown.slice(0, MAX_UNKNOWN_REPORTED)) report([field], `unknown field "${clip(field, 40)}"${suggest(field)}`);
    if (unknown.length > MAX_UNKNOWN_REPORTED) {
      issues.push({ path: '', message: `and ${unknown.length - MAX_UNKNOWN_REPORTED} more unknown fields` });
    }
  }

  for (const field of Object.keys(FIELD_PARSERS) as (keyof typeof FIELD_PARSERS)[]) {
    if (field === 'call') continue;
    const value = raw[field];
    if (isAbsent(value)) continue;
    const r = FIELD_PARSERS[field](value) as Normalised<unknown> & { at?: PropertyKey[] };
    if (!r.ok) report([field, ...(r.at ?? [])], r.message);
    else if (!(Array.isArray(r.value) && r.value.length === 0)) (draft as Record<string, unknown>)[field] = r.value;
  }

  const region = options.defaultRegion ?? 'US';
  if (!isAbsent(raw.call)) {
    const call = parseCall(raw.call, region, options.unknownFields ?? 'reject', report);
    if (call !== undefined) draft.call = call;
  }
  if (!isAbsent(raw.contact)) {
    const contact = parseContact(raw.contact, region, options.unknownFields ?? 'reject', report);
    if (contact !== undefined) draft.contact = contact;
  }
  if (draft.attachments !== undefined) {
    const all = draft.attachments;
    const files = all.filter(isLocalFile);
    if (files.length > 0 && options.localFiles !== 'allow') {
      for (const [i, a] of all.entries()) {
        if (isLocalFile(a)) report(['attachments', i], `"${clip(a)}" is a local file: only \`ingest import\` reads files; give an http(s) URL`);
      }
    }
    const urls = all.filter((a) => !isLocalFile(a));
    if (urls.length > 0) draft.attachments = urls;
    else delete draft.attachments;
    if (files.length > 0) draft.files = files;
  }

  if (draft.locationId === undefined && !failed.has('locationId')) {
    if (options.defaultLocationId !== undefined) draft.locationId = options.defaultLocationId;
    else report(['locationId'], 'is required (or give the import a default location with --location)');
  }
  if (draft.type === undefined && !failed.has('type')) {
    report(['type'], `is required: one of ${MESSAGE_TYPES.join(', ')}`);
  }
  if (draft.type !== undefined) checkTypeRules(draft, draft.type, failed, options, report);

  const fallbackKey = draft.key ?? draft.altId ?? stringish(raw.key) ?? stringish(raw.altId);
  if (issues.length > 0) return withKey({ ok: false, issues }, fallbackKey);

  const { locationId: loc, key: sourceKey, contact, files, ...rest } = draft;
  const body = { direction: 'inbound', ...rest } as InboundMessageBody;
  const strict = inboundMessageBodySchema.safeParse(body);
  if (!strict.success) {
    // Our normalisers must produce strict output; if one did not, refuse the row rather than enqueue it.
    const first = strict.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
    return withKey({ ok: false, issues: first }, fallbackKey);
  }
  // What names the message beyond its body (its contact, its files) is part of its identity too.
  const bodyForKey = { ...body, ...(contact === undefined ? {} : { contact }), ...(files === undefined ? {} : { files }) };
  const providerFilled =
    body.conversationProviderId === undefined && !DEFAULT_PROVIDER_TYPES.has(body.type) && options.defaultConversationProviderId !== undefined;
  if (providerFilled) body.conversationProviderId = options.defaultConversationProviderId;
  const record: MessageRecord = {
    locationId: loc as string,
    // The key is derived before config fills anything in, so changing that config does not
    // change the identity of a message (and so cannot cause a second post on re-import).
    key: idempotencyKey(loc as string, sourceKey, bodyForKey),
    body,
  };
  if (contact !== undefined) record.contact = contact;
  if (files !== undefined) record.files = files;
  // Every message carries an altId, so that HighLevel can be asked whether it holds it (reconcile).
  if (body.altId === undefined) body.altId = derivedAltId(record.key, LIMITS.sourceIdChars);
  if (sourceKey !== undefined) record.sourceKey = sourceKey;
  return { ok: true, record };
}

function parseCall(
  value: unknown,
  region: CountryCode,
  unknownFields: 'reject' | 'drop',
  report: (path: PropertyKey[], message: string) => void,
): CallData | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    report(['call'], `must be an object with to, from and status, not ${describe(value)}`);
    return undefined;
  }
  const raw = ownFields(value as Record<string, unknown>);
  const call: CallData = {};
  let bad = false;
  for (const field of Object.keys(raw)) {
    if (reservedSegment(field) !== undefined) {
      report(['call', field], RESERVED_FIELD_REASON);
      bad = true;
    } else if (!CALL_FIELD_SET.has(field) && unknownFields === 'reject') {
      report(['call', field], `unknown field "${clip(field, 40)}"; call takes to, from and status`);
      bad = true;
    }
  }
  for (const field of ['to', 'from'] as const) {
    if (isAbsent(raw[field])) continue;
    const t = text(64, { numbers: true })(raw[field]);
    const r = t.ok ? normalizePhone(t.value, region) : t;
    if (r.ok) call[field] = r.value;
    else {
      report(['call', field], r.message);
      bad = true;
    }
  }
  if (!isAbsent(raw.status)) {
    const r = oneOf<CallStatus>(CALL_STATUSES, 'call status')(raw.status);
    if (r.ok) call.status = r.value;
    else {
      report(['call', 'status'], r.message);
      bad = true;
    }
  }
  return bad ? undefined : call;
}

function parseContact(
  value: unknown,
  region: CountryCode,
  unknownFields: 'reject' | 'drop',
  report: (path: PropertyKey[], message: string) => void,
): ContactRef | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    report(['contact'], `must be an object with a phone or an email (and optionally names), not ${describe(value)}`);
    return undefined;
  }
  const raw = ownFields(value as Record<string, unknown>);
  const contact: ContactRef = {};
  const problems = { count: 0 };
  const fail = (field: string, message: string) => {
    report(['contact', field], message);
    problems.count += 1;
  };
  for (const field of Object.keys(raw)) {
    if (reservedSegment(field) !== undefined) fail(field, RESERVED_FIELD_REASON);
    else if (!CONTACT_FIELD_SET.has(field) && unknownFields === 'reject')
      fail(field, `unknown field "${clip(field, 40)}"; contact takes ${CONTACT_FIELDS.join(', ')}`);
  }
  if (!isAbsent(raw.phone)) {
    const t = text(64, { numbers: true })(raw.phone);
    const r = t.ok ? normalizePhone(t.value, region) : t;
    if (r.ok) contact.phone = r.value;
    else fail('phone', r.message);
  }
  if (!isAbsent(raw.email)) {
    const r = emailText(raw.email);
    if (r.ok) contact.email = r.value;
    else fail('email', r.message);
  }
  for (const field of ['name', 'firstName', 'lastName', 'companyName'] as const) {
    if (isAbsent(raw[field])) continue;
    const r = text(CONTACT_NAME_CHARS, { numbers: true })(raw[field]);
    if (r.ok) contact[field] = r.value;
    else fail(field, r.message);
  }
  if (problems.count === 0 && contact.phone === undefined && contact.email === undefined) {
    fail('phone', 'a contact needs a phone or an email: HighLevel finds the contact by one of them');
  }
  return problems.count > 0 ? undefined : contact;
}

function checkTypeRules(
  draft: Draft,
  type: MessageType,
  failed: ReadonlySet<string>,
  options: NormalizeOptions,
  report: (path: PropertyKey[], message: string) => void,
): void {
  const has = (field: keyof Draft) => draft[field] !== undefined || failed.has(field);
  if (has('contact') && (has('conversationId') || has('contactId'))) {
    report(['contact'], 'give either HighLevel ids (contactId, conversationId) or contact, not both');
  } else if (!has('conversationId') && !has('contactId') && !has('contact')) {
    report(['conversationId'], 'a message needs conversationId, contactId, or contact (with a phone or an email)');
  }
  if (type === 'Call') {
    if (!failed.has('call')) {
      if (draft.call?.to === undefined) report(['call', 'to'], 'a Call needs call.to (a phone number)');
      if (draft.call?.from === undefined) {
        report(['call', 'from'], 'a Call needs call.from (a phone number of an existing contact)');
      }
    }
  } else if (type === 'Email') {
    if (!has('html') && !has('message')) report(['html'], 'an Email needs html or message');
  } else if (!has('message') && !has('attachments') && !has('files')) {
    report(['message'], `a ${type} message needs message or at least one attachment`);
  }
  if (!DEFAULT_PROVIDER_TYPES.has(type) && !has('conversationProviderId') && options.defaultConversationProviderId === undefined) {
    report(
      ['conversationProviderId'],
      `is required for ${type} messages (only SMS and Email can use the location's default provider); ` +
        'set it on the record or set GHL_CONVERSATION_PROVIDER_ID',
    );
  }
}

/**
 * The record's own fields only, in an object without a prototype: a field a parser left on the
 * prototype chain (or a polluted Object.prototype) is not read as the record's.
 */
function ownFields(input: Record<string, unknown>): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const field of Object.keys(input)) Object.defineProperty(out, field, { value: input[field], enumerable: true, writable: true });
  return out;
}

function withKey(result: { ok: false; issues: RecordIssue[] }, key: string | undefined): RecordResult {
  return key === undefined ? result : { ...result, key };
}

function stringish(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return clip(value.trim(), LIMITS.sourceIdChars);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `text "${clip(value, 40)}"`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  return typeof value;
}

function suggest(field: string): string {
  const lower = field.toLowerCase().replace(/[_\s-]/g, '');
  for (const known of RECORD_FIELDS) {
    if (known.toLowerCase() === lower) return `; did you mean "${known}"?`;
  }
  if (field.startsWith('call.')) return '; nested call fields belong in a "call" object (CSV headers call.to etc. are read for you)';
  return '';
}
