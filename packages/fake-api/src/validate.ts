/**
 * Body validation the way HighLevel's NestJS service answers it: class-validator messages in a
 * 422 array, 400 for the business rules (inbound messages, contact upserts). Written independently of `@ghl-ingest/schema` on purpose:
 * the stand-in is a second opinion on our normalisation, not a copy of it.
 */
const TYPES = new Set([
  'SMS',
  'Email',
  'WhatsApp',
  'GMB',
  'IG',
  'FB',
  'Custom',
  'WebChat',
  'Live_Chat',
  'Call',
  'RCS',
  'IVR_Call',
  'Campaign_Call',
  'Campaign_VoiceMail',
  'TIKTOK',
  'ALL_IN_ONE_CHAT',
  'FORM_SUBMISSION',
]);
const CALL_STATUSES = new Set(['pending', 'completed', 'answered', 'busy', 'no-answer', 'failed', 'canceled', 'voicemail']);
const STRING_FIELDS = [
  'message',
  'conversationId',
  'contactId',
  'conversationProviderId',
  'html',
  'subject',
  'emailFrom',
  'emailTo',
  'emailMessageId',
  'altId',
  'date',
] as const;
const ALLOWED = new Set<string>([...STRING_FIELDS, 'type', 'attachments', 'emailCc', 'emailBcc', 'direction', 'call']);
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

export type Verdict = { ok: true } | { ok: false; status: 400 | 422; message: string | string[] };

export interface ValidateOptions {
  /** Provider ids the location has; when set, others answer 400 "Invalid conversationProviderId". */
  providers?: ReadonlySet<string>;
  /** Longest `message` accepted. */
  maxMessageChars?: number;
}

export function validateInbound(body: unknown, options: ValidateOptions = {}): Verdict {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, status: 400, message: 'Request body must be a JSON object' };
  }
  const b = body as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(b)) if (!ALLOWED.has(key)) problems.push(`property ${key} should not exist`);
  if (typeof b.type !== 'string' || !TYPES.has(b.type)) {
    problems.push(`type must be one of the following values: ${[...TYPES].join(', ')}`);
  }
  for (const field of STRING_FIELDS) {
    if (b[field] !== undefined && typeof b[field] !== 'string') problems.push(`${field} must be a string`);
  }
  for (const field of ['attachments', 'emailCc', 'emailBcc'] as const) {
    const v = b[field];
    if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) {
      problems.push(`each value in ${field} must be a string`);
    }
  }
  if (options.maxMessageChars !== undefined && typeof b.message === 'string' && b.message.length > options.maxMessageChars) {
    problems.push(`message must be shorter than or equal to ${options.maxMessageChars} characters`);
  }
  if (b.direction !== undefined && b.direction !== 'inbound' && b.direction !== 'outbound') {
    problems.push('direction must be one of the following values: inbound, outbound');
  }
  if (typeof b.date === 'string' && (!ISO_DATE_TIME.test(b.date) || Number.isNaN(Date.parse(b.date)))) {
    problems.push('date must be a valid ISO 8601 date string');
  }
  if (b.call !== undefined) {
    const call = b.call;
    if (typeof call !== 'object' || call === null || Array.isArray(call)) problems.push('call must be an object');
    else {
      const c = call as Record<string, unknown>;
      for (const key of Object.keys(c)) if (!['to', 'from', 'status'].includes(key)) problems.push(`call.property ${key} should not exist`);
      if (c.status !== undefined && (typeof c.status !== 'string' || !CALL_STATUSES.has(c.status))) {
        problems.push(`call.status must be one of the following values: ${[...CALL_STATUSES].join(', ')}`);
      }
      for (const key of ['to', 'from'] as const) {
        if (c[key] !== undefined && (typeof c[key] !== 'string' || !/^\+\d{7,15}$/.test(c[key]))) {
          problems.push(`call.${key} must be a valid phone number`);
        }
      }
    }
  }
  if (problems.length > 0) return { ok: false, status: 422, message: problems };

  const type = b.type as string;
  if (b.conversationId === undefined && b.contactId === undefined) {
    return { ok: false, status: 400, message: 'Either conversationId or contactId is required' };
  }
  const provider = b.conversationProviderId as string | undefined;
  if (provider === undefined && type !== 'SMS' && type !== 'Email') {
    return { ok: false, status: 400, message: `conversationProviderId is required for type ${type}` };
  }
  if (provider !== undefined && options.providers !== undefined && !options.providers.has(provider)) {
    return { ok: false, status: 400, message: 'Invalid conversationProviderId' };
  }
  if (type === 'Call') {
    const c = (b.call ?? {}) as Record<string, unknown>;
    if (c.to === undefined || c.from === undefined) return { ok: false, status: 400, message: 'call.to and call.from are required for Call' };
  }
  if (type === 'Email' && b.html === undefined && b.message === undefined) {
    return { ok: false, status: 400, message: 'html or message is required for Email' };
  }
  return { ok: true };
}

/** A contact upsert's string fields (UpsertContactDto; each may also be null). */
const CONTACT_STRINGS = [
  'firstName',
  'lastName',
  'name',
  'email',
  'phone',
  'gender',
  'address1',
  'city',
  'state',
  'postalCode',
  'website',
  'timezone',
  'source',
  'country',
  'companyName',
  'assignedTo',
] as const;
const PHONE = /^\+\d{7,15}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
export const CONTACT_IDENTITY_REQUIRED = 'Either email or phone is required';

/** A phone as the stand-in compares and stores it: spaces, dashes, dots and parentheses removed. */
export function normalizePhone(phone: string): string {
  return phone.replace(/[\s\-().]/g, '');
}

export interface UpsertValidateOptions {
  /** Phone numbers (normalised) the location refuses with 422. */
  rejectPhones?: ReadonlySet<string>;
}

/**
 * `POST /contacts/upsert` (UpsertContactDto): unknown fields are tolerated, as HighLevel does;
 * wrong types answer 422; a phone that is not `+` and 7-15 digits (once spaces, dashes and
 * parentheses are gone), a malformed email, or neither of the two answers 400.
 */
export function validateUpsert(body: unknown, options: UpsertValidateOptions = {}): Verdict {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, status: 400, message: 'Request body must be a JSON object' };
  }
  const b = body as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof b.locationId !== 'string' || b.locationId === '') problems.push('locationId should not be empty', 'locationId must be a string');
  for (const field of CONTACT_STRINGS) {
    if (b[field] !== undefined && b[field] !== null && typeof b[field] !== 'string') problems.push(`${field} must be a string`);
  }
  if (b.tags !== undefined && !(Array.isArray(b.tags) && b.tags.every((t) => typeof t === 'string'))) problems.push('each value in tags must be a string');
  for (const field of ['dnd', 'createNewIfDuplicateAllowed'] as const) {
    if (b[field] !== undefined && typeof b[field] !== 'boolean') problems.push(`${field} must be a boolean value`);
  }
  if (problems.length > 0) return { ok: false, status: 422, message: problems };

  const phone = typeof b.phone === 'string' && b.phone !== '' ? normalizePhone(b.phone) : undefined;
  const email = typeof b.email === 'string' && b.email !== '' ? b.email : undefined;
  const invalid: string[] = [];
  if (phone !== undefined && !PHONE.test(phone)) invalid.push('phone must be a valid phone number');
  if (email !== undefined && !EMAIL.test(email)) invalid.push('email must be an email');
  if (invalid.length > 0) return { ok: false, status: 400, message: invalid };
  if (phone === undefined && email === undefined) return { ok: false, status: 400, message: CONTACT_IDENTITY_REQUIRED };
  if (phone !== undefined && options.rejectPhones?.has(phone) === true) {
    return { ok: false, status: 422, message: [`phone ${phone} is not a number this location can message`] };
  }
  return { ok: true };
}
