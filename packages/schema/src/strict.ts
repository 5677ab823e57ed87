/**
 * The strict shapes: what a normalised body looks like. The worker parses every job with these
 * again on dequeue (the data crossed a process boundary); the importer's output must satisfy them.
 */
import { z } from 'zod';
import { CALL_STATUSES, DIRECTIONS, MESSAGE_TYPES, type InboundMessageBody } from './body.ts';
import { LIMITS } from './limits.ts';

const E164 = /^\+[1-9]\d{6,14}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Safe in Redis keys and BullMQ queue names (no `:`), and in URLs. */
export const LOCATION_ID = /^[A-Za-z0-9_-]+$/;

const id = z.string().min(1).max(LIMITS.idChars);
const httpUrl = z
  .string()
  .max(LIMITS.urlChars)
  .refine((value) => /^https?:\/\/[^/\s]+/i.test(value), 'must be an absolute http(s) URL');
const email = z
  .string()
  .max(320)
  .refine((value) => value === value.toLowerCase() && z.email().safeParse(value).success);

export const callDataSchema = z.strictObject({
  to: z.string().regex(E164).optional(),
  from: z.string().regex(E164).optional(),
  status: z.enum(CALL_STATUSES).optional(),
});

export const inboundMessageBodySchema = z.strictObject({
  type: z.enum(MESSAGE_TYPES),
  attachments: z.array(httpUrl).min(1).max(LIMITS.attachments).optional(),
  message: z.string().min(1).max(LIMITS.messageChars).optional(),
  conversationId: id.optional(),
  contactId: id.optional(),
  conversationProviderId: id.optional(),
  html: z.string().min(1).max(LIMITS.htmlChars).optional(),
  subject: z.string().min(1).max(LIMITS.subjectChars).optional(),
  emailFrom: email.optional(),
  emailTo: email.optional(),
  emailCc: z.array(email).min(1).max(LIMITS.ccAddresses).optional(),
  emailBcc: z.array(email).min(1).max(LIMITS.ccAddresses).optional(),
  emailMessageId: id.optional(),
  altId: z.string().min(1).max(LIMITS.sourceIdChars).optional(),
  direction: z.enum(DIRECTIONS),
  date: z.string().regex(ISO_UTC).optional(),
  call: callDataSchema.optional(),
}) satisfies z.ZodType<InboundMessageBody>;

export const locationIdSchema = z.string().min(1).max(LIMITS.idChars).regex(LOCATION_ID, 'may hold only letters, digits, "_" and "-"');
