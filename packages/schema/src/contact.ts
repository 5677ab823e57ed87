/**
 * A contact named by what the source system knows (a phone number, an email address, a name)
 * instead of HighLevel's ids, and the attachments that HighLevel cannot fetch by itself (local
 * files). The worker resolves both right before the post: the contact with `POST /contacts/upsert`,
 * the files with `POST /conversations/messages/upload`.
 */
import { z } from 'zod';
import { LIMITS } from './limits.ts';

/** The fields of a record's `contact` (CSV: `contact.phone` and so on). */
export const CONTACT_FIELDS = ['phone', 'email', 'name', 'firstName', 'lastName', 'companyName'] as const;
export type ContactField = (typeof CONTACT_FIELDS)[number];

/** A contact as a record names it: phone in E.164, email lower-cased, at least one of the two. */
export interface ContactRef {
  phone?: string;
  email?: string;
  name?: string;
  firstName?: string;
  lastName?: string;
  companyName?: string;
}

/** Characters of a contact's name fields. */
export const CONTACT_NAME_CHARS = 256;

const E164 = /^\+[1-9]\d{6,14}$/;
const nameText = z.string().min(1).max(CONTACT_NAME_CHARS);

export const contactRefSchema = z
  .strictObject({
    phone: z.string().regex(E164).optional(),
    email: z
      .string()
      .max(320)
      .refine((v) => v === v.toLowerCase() && z.email().safeParse(v).success)
      .optional(),
    name: nameText.optional(),
    firstName: nameText.optional(),
    lastName: nameText.optional(),
    companyName: nameText.optional(),
  })
  .refine((c) => c.phone !== undefined || c.email !== undefined, 'a contact needs a phone or an email') satisfies z.ZodType<ContactRef>;

/**
 * The names under which a contact's id is remembered: `p:<E.164>` and `e:<email>`, phone first.
 * A message finds its contact under the first name that is known; a contact found or created is
 * remembered under every name its record gave.
 */
export function contactIdentities(contact: ContactRef): string[] {
  const out: string[] = [];
  if (contact.phone !== undefined) out.push(`p:${contact.phone}`);
  if (contact.email !== undefined) out.push(`e:${contact.email}`);
  return out;
}

/**
 * A local file named in `attachments`, once the import has read it: stored in Redis by its
 * content's SHA-256 until the worker uploads it (see `FileStore`). `from` is the file's absolute
 * `file:` URL, so that a dead letter's export names the same file again.
 */
export interface StoredFile {
  /** File name as HighLevel will show it (the last segment of the path). */
  name: string;
  bytes: number;
  /** SHA-256 of the content, hex: its key in the file store. */
  sha256: string;
  from: string;
}

export const storedFileSchema = z.strictObject({
  name: z.string().min(1).max(255),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  from: z
    .string()
    .min(1)
    .max(LIMITS.urlChars * 2),
}) satisfies z.ZodType<StoredFile>;

/**
 * HighLevel's upload rules (`POST /conversations/messages/upload`): the file types it takes, by
 * extension, and its size and count limits.
 */
export const UPLOAD_RULES = {
  extensions: ['jpg', 'jpeg', 'png', 'mp4', 'mpeg', 'zip', 'rar', 'pdf', 'doc', 'docx', 'txt', 'mp3', 'wav'],
  /** Bytes of one file (most channels). */
  maxBytes: 5 * 1024 * 1024,
  /** Files in one request. */
  filesPerRequest: 5,
} as const;

/** Why HighLevel would refuse this file for upload, or undefined when it would take it. */
export function uploadRefusal(name: string, bytes: number, maxBytes: number = UPLOAD_RULES.maxBytes): string | undefined {
  const dot = name.lastIndexOf('.');
  const ext = dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
  if (!(UPLOAD_RULES.extensions as readonly string[]).includes(ext)) {
    return `"${name}": HighLevel takes only ${UPLOAD_RULES.extensions.join(', ')} files`;
  }
  if (bytes > maxBytes) return `"${name}" is ${bytes} bytes; HighLevel takes at most ${maxBytes} bytes per file`;
  return undefined;
}
